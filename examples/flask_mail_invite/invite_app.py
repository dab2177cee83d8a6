"""A Flask app that mails team invitations with Flask-Mail."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_mail import Mail, Message

mail = Mail()


def create_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(MAIL_SERVER="smtp.team.example", MAIL_PORT=587, MAIL_DEFAULT_SENDER="Team <invites@team.example>")
    app.config.update(config)
    mail.init_app(app)

    @app.post("/invite")
    def invite() -> tuple[str, int]:
        address = request.form.get("email", "").strip().lower()
        if "@" not in address:
            return "That is not an email address.", 400
        msg = Message(subject="You are invited to the team", recipients=[address])
        msg.body = f"Join us: https://team.example/join?email={address}\n"
        mail.send(msg)
        return "Invitation sent.", 201

    return app
