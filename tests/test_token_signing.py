"""The send path's tokens (unsubscribe, click) are made without itsdangerous's layers (rules/tokens.py,
`_Dumps`): byte for byte the tokens `URLSafeSerializer.dumps` makes, so links already in inboxes and links
sent from now on are read by the same `loads`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeSerializer

from nurture.rules.tokens import BadToken, LinkSigner, _Dumps, _Loads

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


def _itsdangerous_reads(serializer: URLSafeSerializer, token: str) -> tuple[bool, object]:
    try:
        return True, serializer.loads(token)
    except (BadData, UnicodeError):
        return False, None


def _we_read(loads: _Loads, token: str) -> tuple[bool, object]:
    try:
        return True, loads(token)
    except BadToken:
        return False, None


@settings(max_examples=400, deadline=None)
@given(secret=st.text(min_size=1, max_size=40), payload=payloads, cut=st.integers(min_value=0, max_value=200),
       junk=st.text(max_size=3))
def test_it_reads_what_itsdangerous_reads_and_refuses_what_it_refuses(secret: str, payload: object, cut: int,
                                                                     junk: str) -> None:
    """`_Loads` (the form's start-time token, read on every sign-up) against `URLSafeSerializer.loads`: a
    token as made, one cut short, one with junk put in, and one signed with another key."""
    serializer = URLSafeSerializer(secret, salt="nurture.form-started")
    loads, token = _Loads(serializer), serializer.dumps(payload)
    assert _we_read(loads, token) == (True, payload)
    for altered in (token[:cut], token[:cut] + junk + token[cut:],
                    URLSafeSerializer(secret + "x", salt="nurture.form-started").dumps(payload)):
        assert _we_read(loads, altered) == _itsdangerous_reads(serializer, altered)


@given(token=st.text(max_size=80))
def test_any_text_is_refused_alike(token: str) -> None:
    serializer = URLSafeSerializer("a secret", salt="nurture.form-started")
    assert _we_read(_Loads(serializer), token) == _itsdangerous_reads(serializer, token)


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
