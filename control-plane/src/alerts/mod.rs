//! Alerts (issue 15): when an experiment gets a winner, an SRM, a harmed guardrail, or
//! its publication keeps failing — mailed to who asked and posted to the organisation's
//! webhooks, once per state change.
