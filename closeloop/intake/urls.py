from __future__ import annotations

from django.urls import path

from . import views

app_name = "intake"
urlpatterns = [
    path("done/<str:token>/", views.form_done, name="done"),
    path("<slug:slug>/", views.request_form, name="form"),
]
