"""Contacts and what they do: sign-up, consent and preferences, suppression, events applied (stages,
scores, goals, triggers), feedback and referrals. Built on the rules, the content and the store."""
