"""Routes of the billing half of the operator API, mounted under /api/v1/."""

from django.urls import path

from billing.api import credit, invoices, views

urlpatterns = [
    path("accounts/", views.AccountCreateApi.as_view(), name="account-create"),
    path("accounts/<str:account_id>/", views.AccountDetailApi.as_view(), name="account-detail"),
    path(
        "accounts/<str:account_id>/dashboard-keys/",
        views.DashboardKeysApi.as_view(),
        name="dashboard-keys",
    ),
    path(
        "dashboard-keys/<str:key_id>/",
        views.DashboardKeyDetailApi.as_view(),
        name="dashboard-key-detail",
    ),
    path("accounts/<str:account_id>/usage/", views.AccountUsageApi.as_view(), name="account-usage"),
    path("accounts/<str:account_id>/charges/", views.ChargeListApi.as_view(), name="charge-list"),
    path(
        "accounts/<str:account_id>/close-period/",
        invoices.ClosePeriodApi.as_view(),
        name="account-close-period",
    ),
    path(
        "accounts/<str:account_id>/credits/", credit.CreditCreateApi.as_view(), name="credit-create"
    ),
    path("accounts/<str:account_id>/balance/", credit.BalanceApi.as_view(), name="balance"),
    path(
        "accounts/<str:account_id>/alerts/", credit.AlertListCreateApi.as_view(), name="alert-list"
    ),
    path("invoices/", invoices.InvoiceListApi.as_view(), name="invoice-list"),
    path("invoices/<str:invoice_id>/", invoices.InvoiceDetailApi.as_view(), name="invoice-detail"),
    path(
        "invoices/<str:invoice_id>/lines.csv", invoices.InvoiceCsvApi.as_view(), name="invoice-csv"
    ),
    path("tariffs/", views.TariffCreateApi.as_view(), name="tariff-create"),
    path("tariffs/<str:tariff_id>/", views.TariffDetailApi.as_view(), name="tariff-detail"),
]
