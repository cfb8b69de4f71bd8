"""Demo data for `make run`: an email inbox, a web chat inbox (which also answers by email and
SMS), a team of agents and ~55 conversations with history.

Idempotent: once a demo inbox exists the command leaves it alone (it only prints the logins
and the widget snippet again); each inbox is seeded once. Everything lands in one transaction, so an interrupted run leaves nothing
half-seeded and the next run starts over.

Customer messages, notes, assignments and status changes go through the services, so the
timeline, the system events and the ticket state are what the desk itself would write; the
rows are then backdated with queryset updates (created_at is auto_now_add). Replies are
written directly with their final delivery status: reply_create would enqueue a delivery
task, and seeding must neither send mail nor need Redis.

It lives in channels_in, the top layer, because it creates an EmailChannel as well as the
tickets and conversations below it.
"""
from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import datetime, timedelta

from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from channels_in.models import EmailChannel, SmsChannel, Visitor, WebChatChannel
from conversations import realtime
from conversations.html import fold_quoted_text
from conversations.models import Channel, Contact, ContactIdentity, Conversation, Event, Inbox, Message
from conversations.services import IncomingMessage, contact_get_or_create, email_message_id_new, note_create
from conversations.threading import ThreadMatch
from helpdesk.roles import MANAGERS_GROUP
from tickets.backfill import sla_backfill
from tickets.models import (
    AgentStatus,
    BusinessCalendar,
    CannedResponse,
    CsatSurvey,
    InboxCalendar,
    InboxRouting,
    ReportFact,
    SlaEscalation,
    SlaPolicy,
    SlaTarget,
    Tag,
    Team,
    Ticket,
)
from tickets.services import inbound_message_record, ticket_assign, ticket_set_status

DEMO_ADDRESS = "support@acme.test"
DEMO_INBOX = "Acme Support"
DEMO_PASSWORD = "demo1234"
SIGNATURE = "\n\nBest regards,\n{agent}\nAcme Support"

# username, first name, last name, teams
AGENTS = (
    ("alice", "Alice", "Archer", ("Billing",)),
    ("bob", "Bob", "Brennan", ("Billing", "Technical")),
    ("carol", "Carol", "Chen", ("Technical",)),
)
MANAGER = ("maria", "Maria", "Mendes")
ADMIN = "admin"

CHAT_INBOX = "Website chat"
CHAT_ADDRESS = "chat@acme.test"
CHAT_CALENDAR = "Website chat hours"
CHAT_SMS_NUMBER = "+12025550100"  # 555-01xx: reserved for fiction
# A demo Twilio account: the shape of a real SID ("AC" + 32 hex), nothing Twilio knows.
CHAT_SMS_ACCOUNT_SID = "AC" + "d3e0" * 8
CHAT_SMS_AUTH_TOKEN = "demo-auth-token-not-a-secret"
WIDGET_SNIPPET = '<script src="{site}/static/widget/widget.js" data-key="{key}" async></script>'


@dataclasses.dataclass(frozen=True)
class ChatLine:
    who: str  # "in" (the customer) or "out" (the agent)
    channel: str
    text: str
    minutes: float  # after the previous line
    status: str = ""  # an agent line's delivery status
    notice: str = ""


@dataclasses.dataclass(frozen=True)
class ChatScript:
    """A short conversation in the web chat inbox, by chat, by SMS, or across both chat and email."""

    name: str
    email: str  # the pre-chat form's (unverified) email; for SMS contacts, empty
    phone: str  # SMS contacts: their number
    subject: str
    agent: str
    status: str
    hours_ago: float  # when the last line was written
    lines: tuple[ChatLine, ...]
    site_user_id: str = ""  # a visitor the site identified (a signed proof)
    opted_out: bool = False  # the number texted STOP


CHAT_SCRIPTS = (
    ChatScript("Sam Rivera", "sam.rivera@riverside.example", "", "Does the Team plan include SSO?", "bob", "open", 0.4, (
        ChatLine("in", Channel.WEBCHAT, "Hi! Does the Team plan include SSO? We use Okta.", 0),
        ChatLine("out", Channel.WEBCHAT, "Hi Sam, yes: SAML single sign-on is included in Team and above, and Okta works "
                 "out of the box. Shall I send you the setup guide?", 3, status=Message.DeliveryStatus.READ),
        ChatLine("in", Channel.WEBCHAT, "Yes please, and can we enforce it for everyone?", 2),
    )),
    ChatScript("Mina Park", "mina@parkdesign.example", "", "Export stuck at 90%", "carol", "pending", 20, (
        ChatLine("in", Channel.WEBCHAT, "My project export has been stuck at 90% for an hour. Is something wrong?", 0),
        ChatLine("out", Channel.WEBCHAT, "Hi Mina, thanks for waiting. Large exports with video files can take a while; "
                 "I've restarted yours on a faster worker and will keep an eye on it.", 55,
                 status=Message.DeliveryStatus.DELIVERED,
                 notice="The visitor had left the chat: this reply was also sent by email to mina@parkdesign.example."),
        ChatLine("in", Channel.EMAIL, "It finished overnight and the files look complete. Thanks a lot!\n\nMina", 600),
    ), site_user_id="user-1042"),
    ChatScript("", "", "", "Pricing question", "alice", "new", 2, (
        ChatLine("in", Channel.WEBCHAT, "hello? is anyone there? how much is the starter plan for 3 people", 0),
    )),
    ChatScript("", "", "+12025550143", "Appointment on Thursday", "alice", "solved", 30, (
        ChatLine("in", Channel.SMS, "Hi, is my appointment on Thursday still on? This is Priya.", 0),
        ChatLine("out", Channel.SMS, "Hi Priya! Yes, Thursday 10:00 is confirmed. Reply here if you need to change it.", 12,
                 status=Message.DeliveryStatus.DELIVERED),
        ChatLine("in", Channel.SMS, "Perfect, thank you!", 4),
    )),
    ChatScript("", "", "+13125550178", "Where is my package?", "bob", "open", 5, (
        ChatLine("in", Channel.SMS, "Where is my package? Order 5521", 0),
        ChatLine("out", Channel.SMS, "Hi! Order 5521 is out for delivery today, before 6 pm.", 25,
                 status=Message.DeliveryStatus.DELIVERED),
        ChatLine("in", Channel.SMS, "STOP", 40),
    ), opted_out=True),
)

LOGINS = f"""Demo logins (password "{DEMO_PASSWORD}" for all):
  alice   agent, team Billing
  bob     agent, teams Billing and Technical
  carol   agent, team Technical
  maria   manager (sees every inbox)
  admin   superuser (Django admin at /admin/)
Website chat assigns new conversations round robin to alice and bob (online); carol is away."""


# Routing of the web chat inbox: username -> (availability, capacity).
CHAT_ROUTING = {"alice": ("online", 4), "bob": ("online", 6), "carol": ("away", 4)}

# title, shortcut, body; the last ones are offered in the web chat inbox only.
CANNED = (
    ("Greeting", "hello", "Hi {{ contact.first_name }},\n\nThanks for getting in touch with {{ inbox.name }}."),
    ("Refund issued", "refund",
     ("Hi {{ contact.first_name }},\n\nI've issued a full refund to your original payment method; it usually shows up "
      "within 5 to 10 business days.\n\nBest regards,\n{{ agent.name }}")),
    ("Password reset link", "reset-password",
     ("Hi {{ contact.first_name }},\n\nYou can set a new password at https://app.acme.example/reset. The link we email "
      "you is valid for one hour.\n\n{{ agent.first_name }}")),
    ("Anything else?", "anything-else",
     ("Is there anything else I can help you with? If not, I'll close this conversation (#{{ conversation.id }}); "
      "just reply to open it again.")),
    ("Escalated to engineering", "escalated",
     ("Hi {{ contact.first_name }},\n\nI've passed this on to our engineers with everything you sent. I'll update you "
      "here as soon as I hear back, by tomorrow at the latest.\n\n{{ agent.name }}")),
)
CHAT_CANNED = (
    ("Chat: one moment", "one-moment", "Thanks {{ contact.first_name }}! Give me a moment to look into this."),
    ("Chat: continue by email", "by-email",
     "I'll follow up by email at {{ contact.email }} once I have an answer, so you don't need to keep this window open."),
)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One kind of request, with every line the customer and the agent say about it."""

    subject: str
    team: str | None
    tags: tuple[str, ...]
    priority: str
    opening: str
    reply: str
    follow_up: str
    thanks: str
    closing: str
    note: str


SCENARIOS = (
    Scenario(
        "Charged twice for this month's invoice", "Billing", ("billing", "refund"), "high",
        "Hello,\n\nOur credit card was charged twice for invoice INV-0342 (2 x $1,140.00 on the 3rd). "
        "Our finance team flagged it this morning. Could you refund the duplicate charge?\n\n"
        "The last four digits of the card are 4417.",
        "Hi {first},\n\nSorry about that. I can confirm the second charge was a duplicate caused by a retry on our "
        "payment provider's side. I have refunded $1,140.00 to the card ending 4417; depending on your bank it shows "
        "up within 5-10 business days.\n\nLet me know if anything else looks off.",
        "Thanks {agent}. Could you also send us a credit note for the refund? Our accountant needs one for the books.",
        "The refund arrived today. Thanks for sorting this out so quickly!",
        "Great to hear, {first}. The credit note CN-0019 is in your billing history now as well. "
        "I'll close this conversation; just reply if you need anything else.",
        "Duplicate charge confirmed in Stripe (retry after a gateway timeout). Refund issued.",
    ),
    Scenario(
        "Can't log in after resetting my password", "Technical", ("login",), "normal",
        "Hi,\n\nI reset my password yesterday, but the login page keeps saying \"Invalid email or password\" with the "
        "new one. I tried in Chrome and Firefox, same result. My login is {email}.\n\n"
        "Can you help? I have a client presentation tomorrow.",
        "Hi {first},\n\nThanks for the details. Your account was still locked after five failed attempts before the "
        "reset, which is why the new password didn't work. I've unlocked it now, so please try again with the "
        "password you set yesterday.\n\nIf it still fails, tell me the exact time you tried and I'll look at the logs.",
        "Still getting the same error, I'm afraid. I tried at 9:40 this morning.",
        "It works now, thank you!",
        "Glad you're back in, {first}. Good luck with the presentation!",
        "Account was locked (5 failed logins before the reset). Unlocked in admin.",
    ),
    Scenario(
        "How do I add a new user to our workspace?", "Technical", ("how-to",), "low",
        "Hello,\n\nWe hired two new people and I can't find where to invite them to our workspace. "
        "I'm an admin, I think. Where should I look?",
        "Hi {first},\n\nYou can invite people from Settings > Members > Invite. Enter their email addresses (one per "
        "line) and choose a role; they get an email with a link that's valid for 7 days.\n\n"
        "If the Invite button is greyed out, your plan's seat limit has been reached; I can help with that too.",
        "The Invite button is greyed out. We're on the Team plan with 10 seats and I count only 8 members.",
        "Found it, and both invitations are accepted. Thanks!",
        "Perfect. Welcome to your new colleagues! I'm closing this for now.",
        "Two invitations that were never accepted were holding seats. Explained how to revoke them.",
    ),
    Scenario(
        "Invoice needs our VAT number", "Billing", ("invoice",), "normal",
        "Dear Acme team,\n\nOur invoices are missing our VAT ID, so our accounting department can't process them. "
        "Our VAT ID is DE 811 907 980. Could you add it and reissue the invoices for the last two months?",
        "Hi {first},\n\nI've added VAT ID DE811907980 to your billing profile and reissued the invoices for the last "
        "two months. You'll find them under Billing > Invoices; future invoices will include the ID automatically.\n\n"
        "Anything else I can do?",
        "Thanks! The older of the two invoices still shows our old address though (Hauptstrasse 4 instead of Lindenallee 12).",
        "All good now, the accounting team is happy. Thank you!",
        "Happy to help, {first}. Have a good week!",
        "VAT ID checked in VIES: valid.",
    ),
    Scenario(
        "API returns 502 on /v2/exports", "Technical", ("api", "bug"), "urgent",
        "Hi support,\n\nSince about 06:00 UTC all our calls to POST /v2/exports return 502 Bad Gateway. Other "
        "endpoints work. This blocks our nightly sync for 40 customers.\n\n"
        "Request id from the last failure: req_8f2c41d07e.\n\nPlease treat this as urgent.",
        "Hi {first},\n\nThank you for the request id, that helped. Our engineers have confirmed a problem with the "
        "export service after this morning's deploy and are rolling out a fix now. I'll update you as soon as it's "
        "live.\n\nSorry for the disruption.",
        "Any news? We are still getting 502s, the last one at 11:02 UTC (req_91aa03f6c2).",
        "Confirmed, exports are working again and the nightly sync ran fine. Thanks for keeping us posted.",
        "Thanks for confirming, {first}. The post-mortem will be on our status page by Friday.",
        "Engineering incident INC-2291: export workers out of memory after the 2.14 deploy. Rollback in progress.",
    ),
    Scenario(
        "Please cancel our subscription", "Billing", ("cancellation",), "normal",
        "Hello,\n\nWe've decided to move to a different tool and would like to cancel our subscription at the end of "
        "the current billing period. Please confirm that we won't be charged again.",
        "Hi {first},\n\nSorry to see you go. I've scheduled the cancellation for the end of your billing period on "
        "the 28th; there won't be another charge. Your data stays available for export until then "
        "(Settings > Export).\n\nIf you have a minute, we'd appreciate knowing what we could have done better.",
        "Thanks. Can we still export attachments after the 28th? We have about 3 GB of files.",
        "Export done, we have everything. Thanks for the smooth process.",
        "You're welcome, {first}. All the best with the new tool; you're always welcome back.",
        "Churn reason: moving to a tool bundled with their CRM. Offered 20% off for a year, declined.",
    ),
    Scenario(
        "Upgrade from Starter to Team plan", "Billing", ("upgrade",), "low",
        "Hi,\n\nWe're growing and would like to upgrade from Starter to the Team plan. Is the price prorated if we "
        "switch mid-month? And do we keep our existing projects?",
        "Hi {first},\n\nGreat news! Yes, the switch is prorated to the day, and all projects, files and settings stay "
        "exactly where they are. You can upgrade under Billing > Plan, or I can do it for you if you prefer.",
        "Please do it for us. We'd also need 15 seats instead of the 10 included.",
        "Looks great, the whole team is in. Thanks!",
        "Enjoy the Team plan, {first}!",
        "Upgraded to Team with 15 seats; prorated invoice INV-0388.",
    ),
    Scenario(
        "CSV export is missing the last column", "Technical", ("bug", "export"), "normal",
        "Hello,\n\nWhen I export our task list to CSV, the \"Due date\" column is missing, even though it's visible in "
        "the table view. It used to be there last month. Is this a bug?",
        "Hi {first},\n\nThanks for reporting this. I could reproduce it: custom views with more than 12 columns drop "
        "the last one in CSV exports. I've filed it with our engineers. Until it's fixed, hiding one unused column in "
        "the view brings \"Due date\" back.",
        "The workaround works, thanks. Do you know when the real fix will ship?",
        "Just exported again and the column is there. Thanks!",
        "Great, thanks for your patience, {first}.",
        "Filed BUG-1187: the CSV writer truncates at 12 columns. Workaround given.",
    ),
    Scenario(
        "Two-factor codes not arriving", "Technical", ("login", "2fa"), "high",
        "Hi,\n\nI'm not receiving the two-factor SMS codes anymore, so I can't log in. My phone number hasn't "
        "changed. I have the backup codes somewhere but can't find them right now.\n\n"
        "Please help, I need access for payroll today.",
        "Hi {first},\n\nFor your security I can't disable two-factor authentication by email, but I've sent a "
        "verification link to the address on your account. Once you confirm it, you can switch to an authenticator "
        "app or receive the code by voice call instead of SMS.",
        "I got the link, but it says it has expired. I clicked it within 5 minutes.",
        "Switched to the authenticator app and I'm in. Thank you!",
        "Glad it worked, {first}. Please keep the new backup codes somewhere safe.",
        "SMS provider reports carrier filtering for this number range. Identity verified via the account email.",
    ),
    Scenario(
        "Feature request: dark mode", "Technical", ("feature-request",), "low",
        "Hi there,\n\nLove the product! Any plans for a dark mode? Half of our team works late and the white "
        "background is very bright.",
        "Hi {first},\n\nThanks for the kind words! Dark mode is on our roadmap for this quarter. I've added your vote "
        "to the request, and we'll let you know when it's available in beta.",
        "Great! Could we join the beta when it's ready?",
        "Looking forward to it, thanks!",
        "You're on the beta list, {first}. Thanks for the feedback!",
        "Added a vote to FR-77 (dark mode); 31 votes now.",
    ),
    Scenario(
        "Card declined at renewal", "Billing", ("billing", "payment-failed"), "high",
        "Hello,\n\nWe got an email that our renewal payment failed and the account will be suspended in 3 days. The "
        "card is valid; our bank says they didn't see any attempt. What should we do?",
        "Hi {first},\n\nThe payment was declined with \"authentication required\": your bank wanted a 3-D Secure "
        "confirmation that our automatic renewal can't provide. Please go to Billing > Payment method and click "
        "\"Retry payment\"; you'll be asked to confirm it in your banking app. I've extended the grace period by 7 "
        "days, so there's no rush.",
        "I clicked Retry but nothing happens, no popup from the bank either.",
        "The payment went through now. Thanks for extending the deadline!",
        "Perfect, your account is all set until next year, {first}.",
        "Stripe decline code authentication_required. Grace period extended by 7 days.",
    ),
    Scenario(
        "Webhook signature verification failing", "Technical", ("api", "webhooks"), "high",
        "Hi,\n\nWe're verifying the X-Acme-Signature header on your webhooks as described in the docs, but since "
        "Monday every signature check fails. We haven't changed our code. Did something change on your side?",
        "Hi {first},\n\nYes, sorry: on Monday we rotated webhook secrets for accounts that still had the old "
        "32-character format. The new secret is shown under Settings > Developers > Webhooks. During the transition "
        "we sign with both secrets, so updating it on your side fixes the check immediately.",
        "We updated the secret, but the check still fails for events with non-ASCII characters in the payload.",
        "That was it, we were decoding the body before hashing it. All green now, thanks!",
        "Great, {first}. I've also asked our docs team to make the raw-body requirement more prominent.",
        "They missed the rotation announcement. Non-ASCII failures: they hash the decoded JSON, not the raw body.",
    ),
    Scenario(
        "Where can I download past receipts?", "Billing", ("invoice", "how-to"), "low",
        "Hi,\n\nOur auditor needs all receipts for last year. Where can I download them in one go?",
        "Hi {first},\n\nYou'll find all invoices and receipts under Billing > Invoices. Use the \"Download all\" "
        "button at the top right and choose the date range; you'll get a ZIP file with the PDFs.",
        "I only see invoices from this year there. Where are the older ones?",
        "Got them all, thank you!",
        "Glad that helped, {first}!",
        "Invoices before the billing migration are in the legacy archive; exported them by hand.",
    ),
    Scenario(
        "Dashboard very slow since yesterday", "Technical", ("performance",), "high",
        "Hi,\n\nSince yesterday afternoon our dashboard takes 20-30 seconds to load, and sometimes it times out. "
        "Other pages are fine. We are in the EU region. Anything going on?",
        "Hi {first},\n\nThanks for letting us know. I see slow queries for your workspace in the dashboard's activity "
        "widget, which has grown to over 2 million events. Our engineers are adding an index; meanwhile, removing the "
        "\"All activity\" widget makes the dashboard load instantly again.",
        "We removed the widget and it's faster, but the team really relies on it. Any ETA for the fix?",
        "The widget is back and the dashboard loads in 2 seconds. Thanks!",
        "Thanks for your patience, {first}. We've also added monitoring for this query.",
        "Workspace has 2.1M activity rows; missing index on (workspace_id, created_at). Migration scheduled tonight.",
    ),
    Scenario(
        "Change the billing email address", "Billing", ("billing",), "low",
        "Hello,\n\nPlease send all future invoices to accounts@{domain} instead of my personal address.\n\nThank you",
        "Hi {first},\n\nDone: invoices and payment notices now go to accounts@{domain}. Receipts for past payments "
        "remain available under Billing > Invoices.",
        "Thanks. Could you also copy me on failed payment notices only?",
        "Perfect, thank you.",
        "You're welcome, {first}!",
        "Billing contact changed at the request of the account owner.",
    ),
    Scenario(
        "Data deletion request (GDPR)", None, ("privacy",), "high",
        "Hello,\n\nUnder Article 17 GDPR I request the deletion of all personal data you hold about me. I closed my "
        "account last year.\n\nPlease confirm once done.",
        "Hi {first},\n\nThank you for your request. We've verified that it comes from the address registered to the "
        "closed account and have started the deletion. It will be completed within 30 days, and I'll confirm by "
        "email once it's done.",
        "Thank you. Will you also delete the data held by your payment provider?",
        "Thank you for confirming.",
        "Confirmed, {first}: your personal data has been deleted. Invoices we are legally required to keep are "
        "retained with access restricted.",
        "DSR-0042 opened with legal. Deadline: 30 days.",
    ),
)

# first name, last name, company, mail domain (.example is reserved: nothing is ever delivered)
CUSTOMERS = (
    ("Jana", "Novak", "Lindenhof GmbH", "lindenhof.example"),
    ("Tom", "Becker", "Northwind Traders", "northwind.example"),
    ("Priya", "Raman", "Kestrel Analytics", "kestrel.example"),
    ("Lucas", "Moreau", "Atelier Moreau", "atelier-moreau.example"),
    ("Emma", "Lindqvist", "Fjord Logistics", "fjord.example"),
    ("Daniel", "Okafor", "Baobab Health", "baobab.example"),
    ("Sofia", "Rossi", "Trattoria Digitale", "trattoria.example"),
    ("Kenji", "Watanabe", "Sakura Robotics", "sakura-robotics.example"),
    ("Olivia", "Brown", "Brightside Dental", "brightside.example"),
    ("Mateo", "Garcia", "Sol y Mar Travel", "solymar.example"),
    ("Hannah", "Schmidt", "Schmidt & Partner", "schmidt-partner.example"),
    ("Noah", "Williams", "Copperleaf Studio", "copperleaf.example"),
    ("Aisha", "Khan", "Crescent Finance", "crescent.example"),
    ("Liam", "O'Connor", "Harbour Books", "harbour.example"),
    ("Mei", "Lin", "Jade Garden Foods", "jadegarden.example"),
    ("Jonas", "Berg", "Polar Outfitters", "polar.example"),
    ("Chloe", "Dubois", "Maison Lumiere", "lumiere.example"),
    ("Ravi", "Patel", "Saffron Labs", "saffron.example"),
    ("Isabella", "Costa", "Verde Architects", "verde.example"),
    ("Ethan", "Clark", "Summit Legal", "summit.example"),
    ("Zoe", "Martin", "Pixel Pantry", "pixelpantry.example"),
    ("Omar", "Haddad", "Cedar Imports", "cedar.example"),
    ("Lena", "Fischer", "Alpenglow Hotels", "alpenglow.example"),
    ("Samuel", "Adeyemi", "Lagos Freight", "lagosfreight.example"),
    ("Grace", "Kim", "Blue Heron Clinic", "blueheron.example"),
    ("Felix", "Wagner", "Wagner Maschinenbau", "wagner-mb.example"),
    ("Nora", "Haugen", "Nordlys Energy", "nordlys.example"),
    ("Diego", "Fernandez", "Andes Coffee", "andes.example"),
    ("Amelia", "Taylor", "Thistle & Rose", "thistlerose.example"),
    ("Yusuf", "Demir", "Bosphorus Textiles", "bosphorus.example"),
    ("Clara", "Jensen", "Kobenhavn Bikes", "kbhbikes.example"),
    ("Arjun", "Mehta", "Monsoon Media", "monsoon.example"),
    ("Ella", "Nowak", "Vistula Software", "vistula.example"),
    ("Marco", "Bianchi", "Bianchi Vini", "bianchivini.example"),
    ("Sara", "Ahmed", "Oasis Pharmacy", "oasis.example"),
    ("Lukas", "Horvat", "Adriatic Yachts", "adriatic.example"),
    ("Maya", "Cohen", "Olive Tree Ventures", "olivetree.example"),
    ("Victor", "Silva", "Lisboa Ceramics", "lisboa-ceramics.example"),
    ("Ingrid", "Larsen", "Fjellet Outdoor", "fjellet.example"),
    ("Ben", "Carter", "Carter Plumbing", "carterplumbing.example"),
    ("Fatima", "Zahra", "Atlas Tours", "atlastours.example"),
    ("Hugo", "Lefevre", "Boulangerie Lefevre", "lefevre.example"),
    ("Anna", "Kowalski", "Amber Interiors", "amber.example"),
    ("Kwame", "Mensah", "Gold Coast Solar", "goldcoast.example"),
    ("Lily", "Evans", "Evans Veterinary", "evansvet.example"),
    ("Tariq", "Aziz", "Indus Textiles", "indus.example"),
)
VIP_DOMAINS = {"northwind.example", "summit.example", "sakura-robotics.example"}

# What happens in each conversation, step by step. The mix gives every status and view
# (new, unassigned, mine, pending, on hold, solved, closed) something to show.
SHAPES = (
    ["new"] * 8 + ["triaged"] * 7 + ["pending"] * 9 + ["reopened"] * 7
    + ["on_hold"] * 4 + ["solved"] * 9 + ["closed"] * 5 + ["failed"]
)
STEPS = {
    "new": ("open",),
    "triaged": ("open", "assign_by_manager", "note"),
    "pending": ("open", "assign", "reply", "pending"),
    "reopened": ("open", "assign", "reply", "pending", "follow_up"),
    "on_hold": ("open", "assign", "note", "reply", "on_hold"),
    "solved": ("open", "assign", "reply", "pending", "thanks", "closing", "solved"),
    "closed": ("open", "assign", "reply", "pending", "thanks", "closing", "solved", "closed"),
    "failed": ("open", "assign", "reply_failed", "note_bounce"),
}
# How long after the previous step each step happens, in minutes (low, high).
GAPS = {
    "assign": (5, 180), "assign_by_manager": (5, 120), "note": (2, 40), "note_bounce": (3, 20),
    "reply": (10, 240), "reply_failed": (10, 120), "closing": (10, 180),
    "pending": (1, 3), "on_hold": (1, 5), "solved": (1, 10), "closed": (1440, 4320),
    "follow_up": (60, 1800), "thanks": (60, 1800), "bump": (240, 900),
}
# How long ago the last step happened, in hours (low, high), per shape.
QUIET = {
    "new": (0.2, 20), "triaged": (1, 40), "pending": (4, 150), "reopened": (1, 72),
    "on_hold": (24, 200), "solved": (12, 260), "closed": (24, 200), "failed": (3, 48),
}
MAX_AGE = timedelta(days=14)
SUPPORT_CALENDAR = "Support hours (Berlin)"
# {metric: {priority: (minutes, business hours?)}}
STANDARD_TARGETS = {
    "first_response": {"low": (8 * 60, True), "normal": (4 * 60, True), "high": (2 * 60, True), "urgent": (60, False)},
    "next_response": {"low": (16 * 60, True), "normal": (8 * 60, True), "high": (4 * 60, True), "urgent": (2 * 60, False)},
    "periodic_update": {"urgent": (4 * 60, False)},
    "resolution": {"normal": (5 * 10 * 60, True), "high": (2 * 10 * 60, True), "urgent": (8 * 60, False)},
}
CSAT_COMMENTS = {
    5: ["", "Quick and friendly, thank you!", "Solved in one reply. Great."],
    4: ["", "Good, took a little while.", "Helpful, thanks."],
    3: ["", "Fine in the end."],
    2: ["", "Took too long.", "I had to explain it twice."],
    1: ["", "Still not fixed, honestly."],
}
CHAT_TARGETS = {
    "first_response": {priority: (15, True) for priority in ("low", "normal", "high", "urgent")},
    "next_response": {priority: (15, True) for priority in ("low", "normal", "high", "urgent")},
}
BOUNCE = "Recipient refused: 550 5.1.1 <{email}>: Recipient address rejected: User unknown in virtual mailbox table"


class Command(BaseCommand):
    help = "Create demo users, an email inbox and ~50 conversations with history (once; idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--allow-production", action="store_true", help="Seed even with production settings.")

    def handle(self, *args: object, **options: object) -> None:
        # (SETTINGS_MODULE is None while settings are overridden, as in tests.)
        if (settings.SETTINGS_MODULE or "").endswith(".production") and not options["allow_production"]:
            raise CommandError("Refusing to create demo users with known passwords under production settings (make run: set DEMO_DATA=0).")
        email_done = EmailChannel.objects.filter(address=DEMO_ADDRESS).exists()
        chat_done = EmailChannel.objects.filter(address=CHAT_ADDRESS).exists()
        if email_done and chat_done:
            self.stdout.write("Demo data already present; nothing to do.")
        else:
            counts = self._seed_without_pushes(email=not email_done, chat=not chat_done)
            self.stdout.write(self.style.SUCCESS(
                f"Seeded demo data: inbox {DEMO_INBOX} <{DEMO_ADDRESS}> and inbox {CHAT_INBOX} (web chat, "
                f"<{CHAT_ADDRESS}>, SMS {CHAT_SMS_NUMBER}), {counts['conversations']} conversations, {counts['messages']} messages."
            ))
        self.stdout.write(LOGINS)
        widget = WebChatChannel.objects.filter(inbox__email_channel__address=CHAT_ADDRESS).first()
        if widget is not None:
            self.stdout.write(f"Web chat widget of {CHAT_INBOX}: embed it on any page with\n  "
                              + WIDGET_SNIPPET.format(site=settings.SITE_URL, key=widget.public_key)
                              + f"\n  or try it as a customer at {settings.SITE_URL}/widget/preview/{widget.public_key}/")

    def _seed_without_pushes(self, *, email: bool, chat: bool) -> dict[str, int]:
        # Backdated history is not live news, and seeding runs before Redis is up: the
        # services' Event rows are written, but their pushes go to a throwaway layer.
        previous = channel_layers.set(DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer())
        # Nor is a solve two weeks ago a reason to ask those customers for a rating today: the
        # demo's answers are written with their history (run_sla).
        no_csat = override_settings(HELPDESK={**settings.HELPDESK, "CSAT_ENABLED": False})
        try:
            with no_csat, transaction.atomic():
                seeder = Seeder(now=timezone.now(), rng=random.Random(20250301))
                counts = seeder.run() if email else {"conversations": 0, "messages": 0}
                if chat:
                    chat_counts = seeder.run_chat()
                    counts = {key: counts[key] + chat_counts[key] for key in counts}
                if not SlaPolicy.objects.exists():
                    seeder.run_sla()
                seeder.run_canned()  # by shortcut: one the operator changed is left alone
                return counts
        finally:
            if previous is None:
                channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
            else:
                channel_layers.set(DEFAULT_CHANNEL_LAYER, previous)


@dataclasses.dataclass
class Plan:
    scenario: Scenario
    customer: tuple[str, str, str, str]
    shape: str
    steps: list[tuple[str, datetime]]

    @property
    def started(self) -> datetime:
        return self.steps[0][1]


class Seeder:
    def __init__(self, *, now: datetime, rng: random.Random) -> None:
        self.now = now
        self.rng = rng
        self.last_message_id = Message.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.last_event_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.contact_first_seen: dict[int, datetime] = {}

    def run(self) -> dict[str, int]:
        self.inbox = Inbox.objects.create(name=DEMO_INBOX, kind=Channel.EMAIL)
        Inbox.objects.filter(pk=self.inbox.pk).update(created_at=self.now - MAX_AGE - timedelta(days=1))
        EmailChannel.objects.create(inbox=self.inbox, address=DEMO_ADDRESS, from_name=DEMO_INBOX)
        self._people()
        self.inbox.members.add(*self.agents.values(), self.manager)
        plans = sorted(self._plans(), key=lambda plan: plan.started)  # ids follow creation time
        for plan in plans:
            self._conversation(plan)
        for contact_id, first_seen in self.contact_first_seen.items():
            Contact.objects.filter(pk=contact_id).update(created_at=first_seen)
            ContactIdentity.objects.filter(contact_id=contact_id).update(created_at=first_seen)
        return {
            "conversations": len(plans),
            "messages": Message.objects.filter(conversation__inbox=self.inbox).count(),
        }

    # SLA policies ------------------------------------------------------------------------

    def run_sla(self) -> None:
        """Business hours and two policies, then the history replayed through them, so the
        dashboard shows badges and at-risk conversations and the reports have figures."""
        hours, _ = BusinessCalendar.objects.get_or_create(name=SUPPORT_CALENDAR, defaults={
            "time_zone": "Europe/Berlin",
            "intervals": [{"weekday": day, "start": "08:00", "end": "18:00"} for day in range(5)],
        })
        for inbox in Inbox.objects.filter(name__in=[DEMO_INBOX, CHAT_INBOX]):
            calendar = hours if inbox.name == DEMO_INBOX else BusinessCalendar.objects.get(name=CHAT_CALENDAR)
            InboxCalendar.objects.get_or_create(inbox=inbox, defaults={"calendar": calendar})
        chat = SlaPolicy.objects.create(name="Web chat", position=0, warn_at_percent=75)
        chat.inboxes.set(Inbox.objects.filter(name=CHAT_INBOX))
        standard = SlaPolicy.objects.create(name="Standard", position=10, warn_at_percent=75)
        for policy, targets in ((chat, CHAT_TARGETS), (standard, STANDARD_TARGETS)):
            for metric, per_priority in targets.items():
                for priority, (minutes, business) in per_priority.items():
                    SlaTarget.objects.create(policy=policy, metric=metric, priority=priority, minutes=minutes,
                                             business_hours=business)
            SlaEscalation.objects.create(policy=policy, on=SlaEscalation.On.WARN, action=SlaEscalation.Action.NOTIFY)
            SlaEscalation.objects.create(policy=policy, on=SlaEscalation.On.BREACH, action=SlaEscalation.Action.NOTIFY_MANAGERS)
        sla_backfill(now=self.now)
        self._csat_answers()

    def _csat_answers(self) -> None:
        """Most solved customers answered the survey, a few hours after the solve."""
        solved = Ticket.objects.filter(status__in=[Ticket.Status.SOLVED, Ticket.Status.CLOSED], solved_at__isnull=False,
                                       conversation__merged_into__isnull=True).select_related("conversation")
        for ticket in solved.order_by("pk"):
            if self.rng.random() < 0.3:
                continue
            rating = self.rng.choices([5, 4, 3, 2, 1], weights=[50, 25, 10, 8, 7])[0]
            answered = min(ticket.solved_at + timedelta(hours=self.rng.uniform(0.5, 20)), self.now)
            CsatSurvey.objects.create(ticket=ticket, token=uuid.uuid4(), channel=ticket.channel or Channel.EMAIL,
                                      asked_at=ticket.solved_at, rating=rating, answered_at=answered,
                                      comment=self.rng.choice(CSAT_COMMENTS[rating]))
            ReportFact.objects.create(kind=ReportFact.Kind.CSAT, at=answered, ticket=ticket, rating=rating,
                                      inbox_id=ticket.conversation.inbox_id, channel=ticket.channel,
                                      team_id=ticket.team_id, agent_id=ticket.assignee_id, priority=ticket.priority)

    def run_canned(self) -> None:
        """Saved replies for the composer's picker, with placeholders; each once (by shortcut)."""
        chat = Inbox.objects.filter(name=CHAT_INBOX).first()
        author = get_user_model().objects.filter(username=MANAGER[0]).first()
        for title, shortcut, body in CANNED:
            CannedResponse.objects.get_or_create(shortcut=shortcut, defaults={"title": title, "body": body, "created_by": author})
        if chat is not None:
            for title, shortcut, body in CHAT_CANNED:
                CannedResponse.objects.get_or_create(shortcut=shortcut, defaults={"title": title, "body": body, "inbox": chat,
                                                                                  "created_by": author})

    # The web chat inbox -----------------------------------------------------------------

    def run_chat(self) -> dict[str, int]:
        """The web chat inbox, which can also answer by email and SMS, and a few conversations.

        They show what agents see of the new channels: chat and SMS badges, a "Seen" reply, a
        chat answered by email after the visitor left (one customer across channels), an
        identified visitor, and a number that texted STOP.
        """
        inbox = Inbox.objects.create(name=CHAT_INBOX, kind=Channel.WEBCHAT)
        Inbox.objects.filter(pk=inbox.pk).update(created_at=self.now - MAX_AGE - timedelta(days=1))
        calendar, _ = BusinessCalendar.objects.get_or_create(name=CHAT_CALENDAR, defaults={
            "time_zone": "Europe/Berlin",
            "intervals": [{"weekday": day, "start": "09:00", "end": "17:00"} for day in range(5)],
        })
        widget = WebChatChannel.objects.create(inbox=inbox, allowed_origins="*", pre_chat_form=True, calendar=calendar,
                                               greeting="Hi! Ask us anything, we're happy to help.")
        EmailChannel.objects.create(inbox=inbox, address=CHAT_ADDRESS, from_name=f"Acme {CHAT_INBOX}")
        SmsChannel.objects.create(inbox=inbox, account_sid=CHAT_SMS_ACCOUNT_SID, auth_token=CHAT_SMS_AUTH_TOKEN,
                                  phone_number=CHAT_SMS_NUMBER)
        if not hasattr(self, "agents"):
            self._people()
        inbox.members.add(*self.agents.values(), self.manager)
        self.last_message_id = Message.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.last_event_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        for script in sorted(CHAT_SCRIPTS, key=lambda s: -(s.hours_ago * 60 + sum(line.minutes for line in s.lines))):
            self._chat(inbox, widget, script)
        # Routed once its history is written (scripted assignments stay as scripted); new
        # conversations then go round robin to whoever is online with room.
        InboxRouting.objects.create(inbox=inbox, mode=InboxRouting.Mode.ROUND_ROBIN)
        for username, (availability, capacity) in CHAT_ROUTING.items():
            AgentStatus.objects.get_or_create(user=self.agents[username],
                                              defaults={"availability": availability, "capacity": capacity})
        return {"conversations": len(CHAT_SCRIPTS), "messages": Message.objects.filter(conversation__inbox=inbox).count()}

    def _chat(self, inbox: Inbox, widget: WebChatChannel, script: ChatScript) -> None:
        end = self.now - timedelta(hours=script.hours_ago)
        start = end - timedelta(minutes=sum(line.minutes for line in script.lines))
        contact = self._chat_contact(widget, script, start)
        conversation: Conversation | None = None
        when = start
        agent = self.agents[script.agent]
        for line in script.lines:
            when += timedelta(minutes=line.minutes)
            if line.who == "in":
                message = self._chat_inbound(inbox, contact, conversation, script, line)
                if conversation is None:
                    conversation = message.conversation
                    ticket = Ticket.objects.get(pk=conversation.pk)
                    Visitor.objects.filter(channel=widget, contact=contact).update(conversation=conversation)
                    if script.status != "new":
                        ticket_assign(ticket=ticket, assignee=agent, by=agent)
            else:
                self._chat_reply(inbox, conversation, agent, line, when)
            self._stamp(when)
        assert conversation is not None
        if script.status not in ("new", "open"):
            ticket_set_status(ticket=ticket, status=script.status, by=agent)
            self._stamp(when + timedelta(minutes=1))
        Conversation.objects.filter(pk=conversation.pk).update(
            created_at=start, **conversation_denormalised_fields(conversation_id=conversation.pk))
        solved = script.status in (Ticket.Status.SOLVED, Ticket.Status.CLOSED)
        Ticket.objects.filter(pk=conversation.pk).update(created_at=start, updated_at=when,
                                                         solved_at=when + timedelta(minutes=1) if solved else None)
        Contact.objects.filter(pk=contact.pk).update(created_at=start)
        ContactIdentity.objects.filter(contact=contact).update(created_at=start)

    def _chat_contact(self, widget: WebChatChannel, script: ChatScript, start: datetime) -> Contact:
        if script.phone:
            contact = contact_get_or_create(kind=ContactIdentity.Kind.PHONE, address=script.phone, name=script.name)
            if script.opted_out:
                stopped = self.now - timedelta(hours=script.hours_ago)
                ContactIdentity.objects.filter(kind=ContactIdentity.Kind.PHONE, address=script.phone).update(
                    sms_opted_out_at=stopped, sms_consent_keyword="STOP", sms_consent_changed_at=stopped)
            return contact
        # As the widget creates them: the pre-chat email is a display field, not an identity.
        visitor_uuid = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        contact = Contact.objects.create(name=script.name, email=script.email)
        ContactIdentity.objects.create(contact=contact, kind=ContactIdentity.Kind.VISITOR, address=visitor_uuid.hex)
        if script.site_user_id:
            ContactIdentity.objects.create(contact=contact, kind=ContactIdentity.Kind.EXTERNAL,
                                           address=f"{widget.inbox_id}:{script.site_user_id}")
        Visitor.objects.create(uuid=visitor_uuid, channel=widget, contact=contact, name=script.name, email=script.email,
                               external_user_id=script.site_user_id, last_seen_at=self.now - timedelta(hours=script.hours_ago))
        return contact

    def _chat_inbound(self, inbox: Inbox, contact: Contact, conversation: Conversation | None, script: ChatScript,
                      line: ChatLine) -> Message:
        if line.channel == Channel.EMAIL:
            # The visitor answered the emailed reply: that proves the address, which joins the contact.
            ContactIdentity.objects.get_or_create(kind=ContactIdentity.Kind.EMAIL, address=script.email,
                                                  defaults={"contact": contact})
            parent = conversation.messages.filter(kind=Message.Kind.OUTBOUND).order_by("-id").first()
            rfc_id = f"{uuid.UUID(int=self.rng.getrandbits(128)).hex[:24]}@mail.{script.email.partition('@')[2]}"
            incoming = IncomingMessage(channel=Channel.EMAIL, from_address=script.email, from_name=script.name,
                                       to_address=CHAT_ADDRESS, subject=f"Re: {script.subject}", text=line.text,
                                       text_display=line.text, external_id=rfc_id, rfc_message_id=rfc_id,
                                       in_reply_to=parent.rfc_message_id, references=f"<{parent.rfc_message_id}>")
            thread = ThreadMatch(conversation, Message.ThreadRule.IN_REPLY_TO)
        else:
            external = f"SM{uuid.UUID(int=self.rng.getrandbits(128)).hex}" if line.channel == Channel.SMS else str(
                uuid.UUID(int=self.rng.getrandbits(128), version=4))
            incoming = IncomingMessage(channel=line.channel, from_address=script.phone, to_address=CHAT_SMS_NUMBER if script.phone else "",
                                       subject=script.subject if conversation is None else "", text=line.text,
                                       text_display=line.text, external_id=external)
            thread = ThreadMatch(conversation, Message.ThreadRule.NEW if conversation is None else "")
        return inbound_message_record(inbox=inbox, contact=contact, incoming=incoming, thread=thread)

    def _chat_reply(self, inbox: Inbox, conversation: Conversation, agent: AbstractBaseUser, line: ChatLine, when: datetime) -> None:
        """An agent's chat or SMS reply as the delivery pipeline leaves it."""
        rfc_id = email_message_id_new() if line.channel == Channel.WEBCHAT else ""
        message = Message.objects.create(
            conversation=conversation,
            kind=Message.Kind.OUTBOUND,
            channel=line.channel,
            author_user=agent,
            text=line.text,
            text_display=line.text,
            rfc_message_id=rfc_id,
            external_id=f"SM{uuid.UUID(int=self.rng.getrandbits(128)).hex}" if line.channel == Channel.SMS else rfc_id,
            thread_rule=Message.ThreadRule.AGENT,
            delivery_status=line.status,
            delivery_attempts=1,
            delivery_updated_at=when + timedelta(seconds=self.rng.randint(2, 90)),
            notices=[line.notice] if line.notice else [],
        )
        realtime.publish(type="message.created", inbox_id=inbox.pk, conversation_id=conversation.pk, message_id=message.pk)

    # People ---------------------------------------------------------------------------

    def _people(self) -> None:
        joined = self.now - MAX_AGE - timedelta(days=7)
        self.teams = {name: Team.objects.get_or_create(name=name)[0] for name in ("Billing", "Technical")}
        self.agents: dict[str, AbstractBaseUser] = {}
        for username, first, last, teams in AGENTS:
            agent = _user(username, first_name=first, last_name=last, date_joined=joined)
            for team in teams:
                self.teams[team].members.add(agent)
            self.agents[username] = agent
        self.manager = _user(MANAGER[0], first_name=MANAGER[1], last_name=MANAGER[2], date_joined=joined)
        self.manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
        _user(ADMIN, first_name="Desk", last_name="Admin", date_joined=joined, is_staff=True, is_superuser=True)
        self.team_agents = {name: [self.agents[u] for u, *_, teams in AGENTS if name in teams] for name in self.teams}

    # Planning -------------------------------------------------------------------------

    def _plans(self) -> list[Plan]:
        shapes = list(SHAPES)
        self.rng.shuffle(shapes)
        plans = []
        for index, shape in enumerate(shapes):
            scenario = SCENARIOS[index % len(SCENARIOS)]
            # A few customers write twice: the same contact in two conversations.
            customer = CUSTOMERS[index % len(CUSTOMERS)]
            plans.append(Plan(scenario, customer, shape, self._timeline(shape)))
        return plans

    def _timeline(self, shape: str) -> list[tuple[str, datetime]]:
        steps = list(STEPS[shape])
        if shape == "new" and self.rng.random() < 0.5:
            steps.append("bump")  # the customer asks again, quoting themselves
        offsets, total = [], 0.0
        for step in steps:
            if step != "open":
                low, high = GAPS[step]
                total += self.rng.uniform(low, high)
            offsets.append(total)
        quiet = timedelta(hours=self.rng.uniform(*QUIET[shape]))
        span = timedelta(minutes=total)
        # Never older than two weeks: squeeze the gaps if the history would reach further.
        scale = min(1.0, (MAX_AGE - quiet) / span) if span else 1.0
        start = self.now - quiet - span * scale
        return [(step, start + timedelta(minutes=offset * scale)) for step, offset in zip(steps, offsets)]

    # Building one conversation --------------------------------------------------------

    def _conversation(self, plan: Plan) -> None:
        scenario, (first, last, company, domain) = plan.scenario, plan.customer
        email = f"{first.lower()}.{last.lower().replace(chr(39), '')}@{domain}"
        words = {"first": first, "email": email, "domain": domain, "company": company}
        self.contact = contact_get_or_create(kind=ContactIdentity.Kind.EMAIL, address=email, name=f"{first} {last}")
        self.contact_first_seen.setdefault(self.contact.pk, plan.started)
        self.words, self.plan = words, plan
        self.outlook = self.rng.random() < 0.35  # how this customer's mail client quotes
        self.agent = self._agent_for(scenario)
        self.conversation: Conversation | None = None
        self.ticket: Ticket | None = None
        self.first_inbound: Message | None = None
        self.last_inbound: Message | None = None
        self.last_outbound: Message | None = None
        self.last_outbound_at = plan.started
        solved_at = None
        for step, when in plan.steps:
            self._step(step, when)
            if step in ("solved", "closed") and solved_at is None:
                solved_at = when
            self._stamp(when)
        assert self.conversation is not None and self.ticket is not None
        self._finish(plan, solved_at)

    def _agent_for(self, scenario: Scenario) -> AbstractBaseUser:
        candidates = self.team_agents[scenario.team] if scenario.team else list(self.agents.values())
        return self.rng.choice(candidates)

    def _step(self, step: str, when: datetime) -> None:
        scenario, words = self.plan.scenario, {**self.words, "agent": self.agent.first_name}
        if step == "open":
            self._inbound(self._signed(scenario.opening.format(**words)), when)
        elif step == "bump":
            text = self._signed("Hello again, just following up on my email below. Any update?", short=True)
            self._inbound(self._quoting_self(text), when)
        elif step in ("follow_up", "thanks"):
            text = getattr(scenario, step).format(**words)
            self._inbound(self._quoting_reply(self._signed(text, short=True)), when)
        elif step == "assign":
            # Agents mostly take conversations themselves; sometimes the manager hands them out.
            by = self.manager if self.rng.random() < 0.3 else self.agent
            ticket_assign(ticket=self.ticket, assignee=self.agent, by=by, team=self._team())
        elif step == "assign_by_manager":
            ticket_assign(ticket=self.ticket, assignee=self.agent, by=self.manager, team=self._team())
        elif step == "note":
            note_create(conversation=self.conversation, author=self.agent, text=scenario.note)
        elif step == "note_bounce":
            note_create(conversation=self.conversation, author=self.agent,
                        text="The reply bounced: this address no longer exists. I left a voicemail on the number "
                             "in their account and asked for a current email address.")
        elif step == "reply":
            self._reply(scenario.reply.format(**words), when)
        elif step == "closing":
            self._reply(scenario.closing.format(**words), when)
        elif step == "reply_failed":
            self._reply(scenario.reply.format(**words), when, failed=BOUNCE.format(email=self.words["email"]))
        elif step in ("pending", "on_hold", "solved", "closed"):
            ticket_set_status(ticket=self.ticket, status=step, by=self.agent)
        else:
            raise ValueError(step)

    def _team(self) -> Team | None:
        return self.teams[self.plan.scenario.team] if self.plan.scenario.team else None

    def _inbound(self, text: str, when: datetime) -> None:
        first, last, _, domain = self.plan.customer
        rfc_id = f"{uuid.uuid4().hex[:24]}@mail.{domain}"
        parent = self.last_outbound or self.last_inbound
        subject = self.plan.scenario.subject
        if parent is not None:
            subject = f"Re: {subject}" + (f" [#{self.conversation.pk}]" if self.last_outbound else "")
        incoming = IncomingMessage(
            channel=Channel.EMAIL,
            from_address=self.words["email"],
            from_name=f"{first} {last}",
            to_address=DEMO_ADDRESS,
            subject=subject,
            text=text,
            text_display=fold_quoted_text(text),
            external_id=rfc_id,
            rfc_message_id=rfc_id,
            in_reply_to=parent.rfc_message_id if parent else "",
            references=" ".join(f"<{i}>" for i in dict.fromkeys(m.rfc_message_id for m in (self.first_inbound, parent) if m)),
        )
        thread = ThreadMatch(self.conversation, Message.ThreadRule.IN_REPLY_TO if parent else Message.ThreadRule.NEW)
        message = inbound_message_record(inbox=self.inbox, contact=self.contact, incoming=incoming, thread=thread)
        if self.conversation is None:
            self.conversation = message.conversation
            self.ticket = Ticket.objects.get(pk=self.conversation.pk)
            self.first_inbound = message
        self.last_inbound = message

    def _reply(self, text: str, when: datetime, *, failed: str = "") -> None:
        """The reply as the delivery pipeline leaves it: sent, delivered, or failed with the reason."""
        rfc_id = email_message_id_new()
        if failed:
            status = Message.DeliveryStatus.FAILED
        elif self.now - when < timedelta(hours=2) or self.rng.random() < 0.2:
            status = Message.DeliveryStatus.SENT  # no receipt yet (or the provider sends none)
        else:
            status = Message.DeliveryStatus.DELIVERED
        message = Message.objects.create(
            conversation=self.conversation,
            kind=Message.Kind.OUTBOUND,
            channel=Channel.EMAIL,
            author_user=self.agent,
            text=text + SIGNATURE.format(agent=self.agent.first_name),
            text_display=text + SIGNATURE.format(agent=self.agent.first_name),
            subject=self.conversation.subject,
            rfc_message_id=rfc_id,
            external_id=None if failed else rfc_id,
            thread_rule=Message.ThreadRule.AGENT,
            delivery_status=status,
            delivery_error=failed,
            delivery_attempts=1,
            delivery_updated_at=when + timedelta(seconds=self.rng.randint(2, 90)),
        )
        realtime.publish(type="message.created", inbox_id=self.inbox.pk, conversation_id=self.conversation.pk, message_id=message.pk)
        self.last_outbound, self.last_outbound_at = message, when

    # Texts ----------------------------------------------------------------------------

    def _signed(self, text: str, *, short: bool = False) -> str:
        first, last, company, _ = self.plan.customer
        return f"{text}\n\n{first}" if short else f"{text}\n\n{first} {last}\n{company}"

    def _quoting_reply(self, text: str) -> str:
        reply = self.last_outbound
        assert reply is not None
        return text + self._quote(f"{DEMO_INBOX} <{DEMO_ADDRESS}>", reply.text, self.last_outbound_at)

    def _quoting_self(self, text: str) -> str:
        first, last, *_ = self.plan.customer
        original = self.first_inbound
        return text + self._quote(f"{first} {last} <{self.words['email']}>", original.text, self.plan.started)

    def _quote(self, author: str, text: str, sent: datetime) -> str:
        if self.outlook:
            return (f"\n\n________________________________\nFrom: {author}\nSent: {sent:%A, %B %d, %Y %H:%M}\n"
                    f"To: {DEMO_ADDRESS}\nSubject: Re: {self.plan.scenario.subject}\n\n{text}")
        quoted = "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
        return f"\n\nOn {sent:%a, %d %b %Y at %H:%M}, {author} wrote:\n{quoted}"

    # Backdating -----------------------------------------------------------------------

    def _stamp(self, when: datetime) -> None:
        """Give the rows the last step wrote the time the step happened."""
        Message.objects.filter(id__gt=self.last_message_id).update(created_at=when)
        Event.objects.filter(id__gt=self.last_event_id).update(created_at=when)
        self.last_message_id = Message.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.last_event_id = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def _finish(self, plan: Plan, solved_at: datetime | None) -> None:
        conversation, scenario = self.conversation, plan.scenario
        Conversation.objects.filter(pk=conversation.pk).update(
            created_at=plan.started, **conversation_denormalised_fields(conversation_id=conversation.pk)
        )
        priority = scenario.priority
        if self.rng.random() < 0.15 and priority != "urgent":
            priority = {"low": "normal", "normal": "high", "high": "urgent"}[priority]
        Ticket.objects.filter(pk=conversation.pk).update(
            created_at=plan.started, updated_at=plan.steps[-1][1], solved_at=solved_at, priority=priority
        )
        tags = list(scenario.tags) + (["vip"] if plan.customer[3] in VIP_DOMAINS else [])
        self.ticket.tags.add(*(Tag.objects.get_or_create(name=name)[0] for name in tags))


def conversation_denormalised_fields(*, conversation_id: int) -> dict[str, object]:
    """The Conversation summary fields as the services maintain them, derived from the timeline.

    Mirrors conversations.services: every message counts; inbound and outbound messages set
    the last-message fields; the first customer message after the last reply starts the wait.
    """
    messages = list(
        Message.objects.filter(conversation_id=conversation_id).order_by("created_at", "id")
        .values("kind", "channel", "text", "text_display", "created_at")
    )
    fields: dict[str, object] = {"message_count": len(messages), "waiting_since": None}
    for message in messages:
        if message["kind"] not in (Message.Kind.INBOUND, Message.Kind.OUTBOUND):
            continue
        fields["last_message_at"] = message["created_at"]
        fields["last_message_preview"] = (message["text_display"] or message["text"]).strip().replace("\n", " ")[:200]
        fields["last_message_channel"] = message["channel"]
        if message["kind"] == Message.Kind.INBOUND:
            fields["waiting_since"] = fields["waiting_since"] or message["created_at"]
        else:
            fields["waiting_since"] = None
    return fields


def _user(username: str, **fields: object) -> AbstractBaseUser:
    """The demo user; an existing account of that name is left exactly as it is."""
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"email": f"{username}@acme.test", **fields})
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user
