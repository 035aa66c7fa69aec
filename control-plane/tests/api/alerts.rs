//! Alerts and outgoing webhooks (issue 15).
