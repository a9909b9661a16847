"""Explanations: `plan` (what an edit would do), `simulate` (what a contact would get) and `why` (what
happened and what comes next). They read; they never send."""
