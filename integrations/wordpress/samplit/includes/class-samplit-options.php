<?php
/**
 * The plugin's options: names, defaults and typed getters.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Option names and accessors. Every option the plugin writes is listed in {@see Samplit_Options::all()}
 * (uninstall.php deletes exactly those).
 */
final class Samplit_Options {

	/** The Samplit console/API origin, e.g. https://app.samplit.example (constant SAMPLIT_CONTROL_PLANE_URL overrides it). */
	public const CONTROL_PLANE_URL = 'samplit_control_plane_url';
	/** The site's public key (pk_…). */
	public const SITE_KEY = 'samplit_site_key';
	/** The edge (Worker) origin serving /v1/samplit.js, /v1/assign and /v1/events. */
	public const EDGE_URL = 'samplit_edge_url';
	/** The site's server secret (ss_…): signs edge calls. Not autoloaded, never printed. */
	public const SERVER_SECRET = 'samplit_server_secret';
	/** Bearer token for the control plane's /api/v1/wordpress/* calls. Not autoloaded, never printed. */
	public const CONNECTION_TOKEN = 'samplit_connection_token';
	/** The token served at /.well-known/samplit-verification.txt. */
	public const VERIFICATION_TOKEN = 'samplit_verification_token';
	/** Whether the snippet is left out for users who can manage_options. */
	public const SKIP_ADMINS = 'samplit_skip_admins';
	/** What the control plane told us about the connection: site_id, host, domain_status. */
	public const CONNECTION_INFO = 'samplit_connection_info';

	/** The path the control plane fetches to verify the host. */
	public const VERIFICATION_PATH = '/.well-known/samplit-verification.txt';

	/** The first-party cookie holding the visitor id (set by the snippet, read at checkout). */
	public const VISITOR_COOKIE = 'samplit_vid';

	/** Prefix of every transient the plugin writes. */
	public const TRANSIENT_PREFIX = 'samplit_';

	/**
	 * Every option name the plugin may write.
	 *
	 * @return string[]
	 */
	public static function all(): array {
		return array(
			self::CONTROL_PLANE_URL,
			self::SITE_KEY,
			self::EDGE_URL,
			self::SERVER_SECRET,
			self::CONNECTION_TOKEN,
			self::VERIFICATION_TOKEN,
			self::SKIP_ADMINS,
			self::CONNECTION_INFO,
		);
	}

	/**
	 * The options that describe a connection (deleted by Disconnect).
	 *
	 * @return string[]
	 */
	public static function connection(): array {
		return array(
			self::SITE_KEY,
			self::EDGE_URL,
			self::SERVER_SECRET,
			self::CONNECTION_TOKEN,
			self::VERIFICATION_TOKEN,
			self::CONNECTION_INFO,
		);
	}

	/**
	 * A string option ('' when missing or not a string).
	 *
	 * @param string $name Option name.
	 */
	public static function string( string $name ): string {
		$value = get_option( $name, '' );
		return is_string( $value ) ? trim( $value ) : '';
	}

	/** Whether the control plane URL comes from the SAMPLIT_CONTROL_PLANE_URL constant. */
	public static function control_plane_url_is_constant(): bool {
		return defined( 'SAMPLIT_CONTROL_PLANE_URL' ) && is_string( constant( 'SAMPLIT_CONTROL_PLANE_URL' ) ) && '' !== constant( 'SAMPLIT_CONTROL_PLANE_URL' );
	}

	/** The control plane origin without a trailing slash ('' when not set). */
	public static function control_plane_url(): string {
		$url = self::control_plane_url_is_constant() ? (string) constant( 'SAMPLIT_CONTROL_PLANE_URL' ) : self::string( self::CONTROL_PLANE_URL );
		return self::clean_url( $url );
	}

	/** The edge origin without a trailing slash ('' when not set). */
	public static function edge_url(): string {
		return self::clean_url( self::string( self::EDGE_URL ) );
	}

	/** The site key ('' when not set). */
	public static function site_key(): string {
		return self::string( self::SITE_KEY );
	}

	/** The server secret ('' when not set). */
	public static function server_secret(): string {
		return self::string( self::SERVER_SECRET );
	}

	/** The connection token ('' when not set). */
	public static function connection_token(): string {
		return self::string( self::CONNECTION_TOKEN );
	}

	/** The verification token ('' when not set). */
	public static function verification_token(): string {
		return self::string( self::VERIFICATION_TOKEN );
	}

	/** Whether administrators are skipped. */
	public static function skip_admins(): bool {
		return (bool) get_option( self::SKIP_ADMINS, false );
	}

	/**
	 * The connection info (site_id, host, domain_status), each a string.
	 *
	 * @return array{site_id: string, host: string, domain_status: string}
	 */
	public static function connection_info(): array {
		$info = get_option( self::CONNECTION_INFO, array() );
		$info = is_array( $info ) ? $info : array();
		$out  = array();
		foreach ( array( 'site_id', 'host', 'domain_status' ) as $key ) {
			$out[ $key ] = isset( $info[ $key ] ) && is_scalar( $info[ $key ] ) ? (string) $info[ $key ] : '';
		}
		return $out;
	}

	/** Whether the snippet can be printed (a site key and an edge URL). */
	public static function snippet_configured(): bool {
		return '' !== self::site_key() && '' !== self::edge_url();
	}

	/** Whether signed edge calls are possible (snippet configuration plus the server secret). */
	public static function signing_configured(): bool {
		return self::snippet_configured() && '' !== self::server_secret();
	}

	/**
	 * Stores a secret option, never autoloaded.
	 *
	 * @param string $name  Option name.
	 * @param string $value The secret.
	 */
	public static function store_secret( string $name, string $value ): void {
		// update_option() adds a missing option with the autoload given here ('no'), and
		// switches an existing one to 'no' when the value changes.
		update_option( $name, $value, false );
	}

	/**
	 * An http(s) URL without trailing slash, or '' when the text is not one.
	 *
	 * @param string $url Candidate URL.
	 */
	public static function clean_url( string $url ): string {
		$url = trim( $url );
		if ( '' === $url ) {
			return '';
		}
		$parts = wp_parse_url( $url );
		if ( ! is_array( $parts ) || empty( $parts['host'] ) || ! isset( $parts['scheme'] ) || ! in_array( strtolower( $parts['scheme'] ), array( 'http', 'https' ), true ) ) {
			return '';
		}
		if ( isset( $parts['query'] ) || isset( $parts['fragment'] ) || isset( $parts['user'] ) || isset( $parts['pass'] ) ) {
			return '';
		}
		return rtrim( $url, '/' );
	}

	/**
	 * Whether a text is a valid visitor id (the edge's rule: 1-128 printable ASCII
	 * characters, no quote, comma, semicolon or backslash).
	 *
	 * @param mixed $id Candidate.
	 */
	public static function valid_visitor_id( $id ): bool {
		return is_string( $id ) && 1 === preg_match( '/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{1,128}$/', $id );
	}

	/**
	 * Whether a text looks like a site key.
	 *
	 * @param string $key Candidate.
	 */
	public static function valid_site_key( string $key ): bool {
		return 1 === preg_match( '/^[A-Za-z0-9_-]{1,128}$/', $key );
	}

	/**
	 * Whether a text looks like a token or a secret we accept from the control plane
	 * (printable ASCII without spaces or quotes, at most 512 characters).
	 *
	 * @param mixed $token Candidate.
	 */
	public static function valid_token( $token ): bool {
		return is_string( $token ) && 1 === preg_match( '/^[A-Za-z0-9._~+\/=:-]{8,512}$/', $token );
	}
}
