//! Mailed account flows (issue 15) through the API and a real SMTP server.
