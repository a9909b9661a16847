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
