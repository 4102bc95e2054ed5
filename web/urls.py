"""Routes of the signed-in pages and of sign-in itself."""

from django.contrib.auth import views as auth_views
from django.urls import path

from web import views
from web.forms import SignInForm

urlpatterns = [
    path("", views.account_list, name="account-list"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=SignInForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/<str:account_id>/", views.account_dashboard, name="account-dashboard"),
    path(
        "accounts/<str:account_id>/invoices/<str:invoice_id>.csv",
        views.invoice_csv,
        name="account-invoice-csv",
    ),
]
