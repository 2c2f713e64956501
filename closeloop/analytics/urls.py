from __future__ import annotations

from django.urls import path

from . import views

app_name = "analytics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("metrics", views.metrics, name="metrics"),
    path("what-if/", views.what_if, name="what_if"),
    path("tables/<slug:name>.csv", views.table_csv, name="csv"),
    path("cases/<slug:name>/<str:key>/", views.drill, name="drill"),
]
