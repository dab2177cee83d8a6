"""A signup view that mails a welcome with django.core.mail, as a Django project does."""

from __future__ import annotations

from django.core.mail import send_mail
from django.http import HttpRequest, HttpResponse


def signup(request: HttpRequest) -> HttpResponse:
    address = request.POST.get("email", "").strip().lower()
    if "@" not in address:
        return HttpResponse("That is not an email address.", status=400)
    send_mail(
        subject="Welcome to Example Shop",
        message=f"Confirm your address: https://shop.example/confirm/{address}\n",
        from_email=None,  # DEFAULT_FROM_EMAIL
        recipient_list=[address],
        html_message=f'<p><a href="https://shop.example/confirm/{address}">Confirm your address</a></p>',
    )
    return HttpResponse("Check your inbox.", status=201)
