-- Browser sessions (the console, issue 12): a session whose credential is an HttpOnly,
-- SameSite=Strict cookie instead of access and refresh tokens. The cookie's value is a
-- 256-bit random token (`cs_` + 64 hex); only its SHA-256 is stored. A browser session has
-- no refresh tokens; it ends at `expires_at`, at logout, or when revoked like any other.
ALTER TABLE auth_sessions ADD COLUMN cookie_hash bytea UNIQUE;
