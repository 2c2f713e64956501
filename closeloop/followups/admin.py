from __future__ import annotations

from django.contrib import admin

from .models import Availability, BusinessCalendar, Leave, TeamCalendar


class TeamCalendarInline(admin.TabularInline):
    model = TeamCalendar
    extra = 1


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "country", "subdivision", "is_default"]
    inlines = [TeamCalendarInline]


@admin.register(Availability)
class AvailabilityAdmin(admin.ModelAdmin):
    list_display = ["staff", "time_zone"]


@admin.register(Leave)
class LeaveAdmin(admin.ModelAdmin):
    list_display = ["staff", "starts_at", "ends_at", "reason"]
