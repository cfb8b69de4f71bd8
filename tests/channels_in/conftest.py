from tests.fakes.desk import email_conversation, postmark, reply  # noqa: F401 - fixtures for this package
