from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from channels_in.models import EmailChannel, SmsChannel, Visitor, WebChatChannel
from conversations.models import Attachment, Channel, Contact, ContactIdentity, Conversation, Inbox, Message
from tickets.models import Team, Ticket


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"agent{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@desk.test")
    first_name = factory.Faker("first_name")
    password = factory.django.Password("pw")


class InboxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Inbox

    name = factory.Sequence(lambda n: f"Support {n}")
    kind = Channel.EMAIL


class EmailChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailChannel

    inbox = factory.SubFactory(InboxFactory)
    address = factory.Sequence(lambda n: f"support{n}@acme.test")
    from_name = "Acme Support"


class SmsChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmsChannel

    inbox = factory.SubFactory(InboxFactory, kind=Channel.SMS)
    account_sid = factory.Sequence(lambda n: f"AC{n:032x}")
    auth_token = factory.Sequence(lambda n: f"{n:032x}")
    # 555-0100..0199: reserved for fiction, never a real subscriber (area codes vary for uniqueness).
    phone_number = factory.Sequence(lambda n: f"+1{201 + n // 100 % 700}5550{100 + n % 100}")


class WebChatChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebChatChannel

    inbox = factory.SubFactory(InboxFactory, kind=Channel.WEBCHAT)
    allowed_origins = "https://www.example.com"


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact
        skip_postgeneration_save = True

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"customer{n}@example.org")

    @factory.post_generation
    def identity(obj, create, extracted, **kwargs):  # noqa: ANN001, N805
        if create and obj.email:
            ContactIdentity.objects.get_or_create(kind="email", address=obj.email.lower(), defaults={"contact": obj})


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    inbox = factory.SubFactory(InboxFactory)
    contact = factory.SubFactory(ContactFactory)
    subject = factory.Faker("sentence", nb_words=5)


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    conversation = factory.SubFactory(ConversationFactory)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    kind = Message.Kind.INBOUND
    channel = Channel.EMAIL
    text = factory.Faker("paragraph")
    text_display = factory.SelfAttribute("text")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")


class AttachmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Attachment

    message = factory.SubFactory(MessageFactory)
    filename = factory.Sequence(lambda n: f"file{n}.pdf")
    content_type = "application/pdf"
    size = 8
    file = factory.django.FileField(data=b"%PDF-1.4")


class VisitorFactory(factory.django.DjangoModelFactory):
    """A widget session; pass conversation= to attach it to a conversation (and its contact)."""

    class Meta:
        model = Visitor

    channel = factory.SubFactory(WebChatChannelFactory)
    contact = factory.LazyAttribute(lambda o: o.conversation.contact if o.conversation else ContactFactory(email=""))
    conversation = None
    name = factory.Faker("first_name")
