from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from closeloop.analytics.views import metrics
from closeloop.api.api import api

admin.site.site_header = "closeloop administration"
admin.site.site_title = "closeloop admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("forms/", include("closeloop.intake.urls")),
    path("analytics/", include("closeloop.analytics.urls")),
    path("metrics", metrics, name="metrics"),
    path("", include("closeloop.web.urls")),
]
