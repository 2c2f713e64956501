from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import auth, case_views, documents, requester, specialist, views
from .ratelimit import rate_limited

app_name = "web"

_reset = {"success_url": reverse_lazy("web:password_reset_done")}
urlpatterns = [
    path("login/", rate_limited("login", get=60, post=10)(auth.SignInView.as_view()), name="login"),
    path("login/verify/", auth.verify, name="verify"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/two-step/", auth.totp_setup, name="totp"),
    path("password/reset/", rate_limited("reset", get=30, post=5)(auth_views.PasswordResetView.as_view(
        template_name="web/password_reset.html", email_template_name="web/password_reset_email.txt",
        subject_template_name="web/password_reset_subject.txt", **_reset)), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(
        template_name="web/password_reset_done.html"), name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(
        template_name="web/password_reset_confirm.html", success_url=reverse_lazy("web:password_reset_complete")),
        name="password_reset_confirm"),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(
        template_name="web/password_reset_complete.html"), name="password_reset_complete"),
    path("healthz", views.healthz, name="healthz"),
    path("", views.home, name="home"),
    path("q/quarantine/", views.quarantine_page, name="quarantine"),
    path("q/quarantine/<int:inbound_id>/retry", views.quarantine_retry, name="quarantine_retry"),
    path("q/quarantine/<int:inbound_id>/dismiss", views.quarantine_dismiss, name="quarantine_dismiss"),
    path("q/<slug:name>/", views.queue, name="queue"),
    path("bulk/", views.bulk, name="bulk"),
    path("c/<int:case_id>/", case_views.case_page, name="case"),
    path("c/<int:case_id>/poll/", case_views.case_poll, name="case_poll"),
    path("c/<int:case_id>/compose/", case_views.compose, name="compose"),
    path("c/<int:case_id>/do/<slug:name>/", case_views.case_act, name="case_act"),
    path("c/<int:case_id>/mail/<int:mail_id>/retry", case_views.mail_retry, name="mail_retry"),
    path("c/<int:case_id>/d/<int:doc_id>/", documents.document_file, name="document"),
    path("c/<int:case_id>/d/<int:doc_id>/p/<int:page>.png", documents.document_page, name="document_page"),
    path("specialist/<int:case_id>/", specialist.brief, name="specialist"),
    path("s/<str:token>/", requester.status_page, name="status"),
]
