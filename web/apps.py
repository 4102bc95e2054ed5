from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        from web.forms import AdminSignInForm
        from web.revocation import revocation_signals_connect

        revocation_signals_connect()
        # The admin's sign-in is locked out like ours (web/lockout.py), and says so.
        admin.site.login_form = AdminSignInForm
