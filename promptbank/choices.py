"""The prompt bank's vocabularies. Imports from other datasets map onto these (see `pipeline.validate`)."""

from django.db import models


class Label(models.TextChoices):
    ATTACK = "attack", "Attack"
    BENIGN = "benign", "Benign"


class Category(models.TextChoices):
    PROMPT_INJECTION = "prompt_injection", "Prompt injection"
    JAILBREAK = "jailbreak", "Jailbreak"
    DATA_EXTRACTION = "data_extraction", "Data extraction"
    SYSTEM_PROMPT_LEAK = "system_prompt_leak", "System-prompt leak"
    ENCODING_OBFUSCATION = "encoding_obfuscation", "Encoding / obfuscation"
    HARMFUL_REQUEST = "harmful_request", "Harmful request"
    BENIGN = "benign", "Benign"


ATTACK_CATEGORIES = tuple(c for c in Category.values if c != Category.BENIGN)


class Severity(models.TextChoices):
    """Ordered from least to most severe; `SEVERITY_RANK` gives the order for sorting and thresholds."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

# The default severity of a category when a record does not give one.
DEFAULT_SEVERITY = {
    Category.PROMPT_INJECTION: Severity.HIGH,
    Category.JAILBREAK: Severity.HIGH,
    Category.DATA_EXTRACTION: Severity.HIGH,
    Category.SYSTEM_PROMPT_LEAK: Severity.MEDIUM,
    Category.ENCODING_OBFUSCATION: Severity.MEDIUM,
    Category.HARMFUL_REQUEST: Severity.CRITICAL,
    Category.BENIGN: Severity.LOW,
}


class SubmissionStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class IngestionSource(models.TextChoices):
    """Where an ingestion run's records came from (the run's channel, not the prompts' `source` name)."""

    API = "api", "API"
    PAGE = "page", "Upload page"
    COMMAND = "command", "Command"
    DROP_FOLDER = "drop_folder", "Drop folder"
    FEED = "feed", "HTTP feed"
    SEED = "seed", "Seed bank"
    SUBMISSION = "submission", "Accepted submission"


class IngestionFormat(models.TextChoices):
    JSON = "json", "JSON array"
    JSONL = "jsonl", "JSON lines"
    CSV = "csv", "CSV with a header"


class Mutator(models.TextChoices):
    BASE64 = "base64", "Base64"
    HEX = "hex", "Hex"
    ROT13 = "rot13", "ROT13"
    LEETSPEAK = "leetspeak", "Leetspeak"
    HOMOGLYPHS = "homoglyphs", "Homoglyphs"
    ZERO_WIDTH = "zero_width", "Zero-width smuggling"
    UNICODE_TAGS = "unicode_tags", "Unicode-tag smuggling"
    REVERSAL = "reversal", "Reversal"
    PAYLOAD_SPLIT = "payload_split", "Payload splitting"
    ROLE_PLAY = "role_play", "Role-play wrapper"
    TRANSLATION = "translation", "Translation-request wrapper"
    IGNORE_PREVIOUS = "ignore_previous", "Ignore-previous prefix"


class LearningEventType(models.TextChoices):
    PROMPTS_INGESTED = "prompts.ingested", "Prompts ingested"
    PROMPT_CREATED = "prompt.created", "Prompt created"
    PROMPT_UPDATED = "prompt.updated", "Prompt updated"
    PROMPT_DEACTIVATED = "prompt.deactivated", "Prompt deactivated"
    VARIANTS_CREATED = "variants.created", "Variants created"
    SUBMISSION_CREATED = "submission.created", "Submission created"
    SUBMISSION_ACCEPTED = "submission.accepted", "Submission accepted"
    SUBMISSION_REJECTED = "submission.rejected", "Submission rejected"
    RELEASE_CREATED = "release.created", "Release created"
    RELEASE_ACTIVATED = "release.activated", "Release activated"
    # Written by the firewall and testing apps (issues 4, 5, 7).
    FINDING_RECORDED = "finding.recorded", "Red-team finding recorded"
    BLOCKED_INPUT_RECORDED = "blocked_input.recorded", "Blocked input recorded"
    FEEDBACK_RECORDED = "feedback.recorded", "Firewall feedback recorded"
    DETECTOR_TRAINED = "detector.trained", "Detector trained"
    DETECTOR_ACTIVATED = "detector.activated", "Detector activated"
    DETECTOR_RETIRED = "detector.retired", "Detector retired"
    REGRESSION_RECORDED = "regression.recorded", "Release regression recorded"


class ReleaseBump(models.TextChoices):
    MAJOR = "major", "Major"
    MINOR = "minor", "Minor"
    PATCH = "patch", "Patch"
