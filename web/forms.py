"""The sign-in forms of our page and of the admin, saying so when a sign-in is locked out
(web/lockout.py) rather than blaming the password."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from web.lockout import sign_in_locked_out

LOCKED_OUT = "Too many failed sign-ins: wait a few minutes, then try again."


class LockoutMessage:
    def get_invalid_login_error(self) -> ValidationError:
        username = self.cleaned_data.get("username")
        if username and sign_in_locked_out(request=self.request, username=username):
            return ValidationError(LOCKED_OUT, code="locked_out")
        return super().get_invalid_login_error()


class SignInForm(LockoutMessage, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your username and password didn't match. Please try again.",
    }


class AdminSignInForm(LockoutMessage, AdminAuthenticationForm):
    pass
