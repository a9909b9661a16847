"""The send path's tokens (unsubscribe, click) are made without itsdangerous's layers (rules/tokens.py,
`_Dumps`): byte for byte the tokens `URLSafeSerializer.dumps` makes, so links already in inboxes and links
sent from now on are read by the same `loads`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from nurture.rules.tokens import LinkSigner, _Dumps

payloads = st.one_of(
    st.integers(min_value=0, max_value=2**63),
    st.tuples(st.integers(min_value=0, max_value=2**40), st.text()).map(list),  # [delivery id, URL]
    # Long, repetitive URLs: zlib makes them shorter, and the token takes the compressed form.
    st.tuples(st.integers(min_value=0), st.text(alphabet="ab/?=&", min_size=40, max_size=400)).map(list),
)


@settings(max_examples=400, deadline=None)
@given(secret=st.text(min_size=1, max_size=40), salt=st.sampled_from(["nurture.unsubscribe", "nurture.click"]),
       payload=payloads)
def test_it_makes_the_tokens_itsdangerous_makes(secret: str, salt: str, payload: object) -> None:
    serializer = URLSafeSerializer(secret, salt=salt)
    assert _Dumps(serializer)(payload) == serializer.dumps(payload)


def test_the_signers_tokens_read_back() -> None:
    signer = LinkSigner("a secret")
    long_url = "https://example.com/" + "shop/" * 40 + "?utm_source=nurture"
    assert signer.delivery_id(signer.unsubscribe_token(42)) == 42
    assert signer.clicked(signer.click_token(7, long_url)) == (7, long_url)
    assert signer.click_token(7, long_url).startswith(".")  # the compressed form was taken


@settings(max_examples=300, deadline=None)
@given(secret=st.text(min_size=1, max_size=40), number=st.integers(min_value=0, max_value=2**63))
def test_the_copied_macs_are_the_macs_hmac_new_makes(secret: str, number: int) -> None:
    """Referral codes, return paths and Message-ID tags come from a keyed HMAC copied per message: the
    same as hmac.new every time (codes already handed out must keep verifying)."""
    import hashlib
    import hmac

    from nurture.rules.tokens import _base36

    signer = LinkSigner(secret)
    body = _base36(number)
    referral_key = hashlib.sha256(f"nurture.referral:{secret}".encode()).digest()
    digest = hmac.new(referral_key, body.encode(), hashlib.sha256).digest()
    assert signer.referral_code(number) == body + _base36(int.from_bytes(digest[:5], "big")).rjust(6, "0")[-6:]
    return_key = hashlib.sha256(f"nurture.return-path:{secret}".encode()).digest()
    digest = hmac.new(return_key, body.encode(), hashlib.sha256).digest()
    mac = _base36(int.from_bytes(digest[:6], "big")).rjust(8, "0")[-8:]
    assert signer.return_path(number, "bounces@example.com") == f"bounces+{body}.{mac}@example.com"
    tag = hmac.new(secret.encode(), str(number).encode(), hashlib.sha256).hexdigest()[:10]
    assert signer.message_tag(number) == tag
