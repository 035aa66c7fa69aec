//! Outgoing webhooks (issue 15): signed deliveries to a local receiver, retries, the delivery log.
