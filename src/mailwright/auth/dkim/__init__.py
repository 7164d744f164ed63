"""DKIM signing and verification (RFC 6376, RFC 8301, RFC 8463).

Signing::

    signer = Signer(domain="example.com", selector="s1", key=pem_bytes)
    message = signer.sign(message) + message

Verifying, as a sans-IO evaluation or through the shared resolver::

    results = run_sync(verify(message, now=time.time()), answer)
    results = await verify_message(resolver, message)

Each :class:`DkimResult` carries an RFC 8601 result word (:class:`Outcome`)
and a reason. The canonicalisation, tag-list and hashing helpers are public
for ARC, which signs the same way (RFC 8617 §4.1.2).
"""

from mailwright.auth.dkim.algorithms import Algorithm, PrivateKey, PublicKey
from mailwright.auth.dkim.canonical import (
    BodyCanonicalizer,
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
    parse_canonicalization,
)
from mailwright.auth.dkim.errors import DkimError, KeyLoadError, SignerConfigError
from mailwright.auth.dkim.hashing import (
    BodyHasher,
    blank_signature,
    body_digest,
    header_digest,
    header_hash_input,
    select_headers,
)
from mailwright.auth.dkim.keyrecord import KeyRecord, parse_key_record
from mailwright.auth.dkim.keys import (
    DEFAULT_RSA_BITS,
    format_key_record,
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_pem,
)
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dkim.sign import DEFAULT_HEADERS, Signer
from mailwright.auth.dkim.signature import Signature, parse_signature
from mailwright.auth.dkim.tags import Malformed, Tag, TagList, format_tag_list, parse_tag_list
from mailwright.auth.dkim.verify import KeyCheck, check_key, verify, verify_message

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_RSA_BITS",
    "Algorithm",
    "BodyCanonicalizer",
    "BodyHasher",
    "Canonicalization",
    "DkimError",
    "DkimResult",
    "KeyCheck",
    "KeyLoadError",
    "KeyRecord",
    "Malformed",
    "Outcome",
    "PrivateKey",
    "PublicKey",
    "Signature",
    "Signer",
    "SignerConfigError",
    "Tag",
    "TagList",
    "blank_signature",
    "body_digest",
    "canonicalize_body",
    "canonicalize_header",
    "check_key",
    "format_key_record",
    "format_tag_list",
    "generate_private_key",
    "header_digest",
    "header_hash_input",
    "load_private_key",
    "load_public_key",
    "parse_canonicalization",
    "parse_key_record",
    "parse_signature",
    "parse_tag_list",
    "private_key_pem",
    "select_headers",
    "verify",
    "verify_message",
]
