<?php
/**
 * Server-side variant decisions for themes: samplit_variant().
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Asks the edge (signed GET /v1/assign, 1.5 s timeout) which arm the visitor is in,
 * caches the answer per visitor for 10 minutes, keeps a stale copy for when the edge
 * fails, and marks the response private.
 */
final class Samplit_Variant {

	/** How long a fresh answer is used, in seconds. */
	public const FRESH_TTL = 600;
	/** How long the stale copy is kept, in seconds. */
	public const STALE_TTL = 86400;
	/** After an edge failure, how long the plugin answers from the stale copy without asking. */
	public const DOWN_TTL = 30;
	/** The edge call's timeout, in seconds. */
	public const TIMEOUT = 1.5;
	/** Most page URLs remembered per visitor. */
	private const URLS_MAX = 50;

	/** Transient: fresh per-visitor answers (prefix + md5). */
	public const FRESH_PREFIX = 'samplit_v_';
	/** Transient: stale per-visitor answers (prefix + md5). */
	public const STALE_PREFIX = 'samplit_vs_';
	/** Transient: the edge failed a moment ago. */
	public const DOWN_TRANSIENT = 'samplit_edge_down';

	/**
	 * Replaces header()/setcookie() (tests).
	 *
	 * @var callable|null
	 */
	private static $header_sender = null;

	/**
	 * Replaces setcookie() (tests).
	 *
	 * @var callable|null
	 */
	private static $cookie_sender = null;

	/** Whether this response was already marked private. */
	private static bool $marked = false;

	/**
	 * The arm of an experiment for the current visitor, or null (not configured, not in
	 * the experiment, excluded, or the edge unreachable with nothing cached).
	 *
	 * @param string $experiment_key The experiment's id as the edge names it
	 *                               (`experiment_id`); for an element of an independent
	 *                               multi-element experiment, `experiment_id:element_id`.
	 */
	public static function get( string $experiment_key ): ?string {
		$experiment_key = trim( $experiment_key );
		if ( '' === $experiment_key || ! Samplit_Options::signing_configured() ) {
			return null;
		}
		// The page now depends on the visitor: no shared cache may keep it.
		self::mark_private();
		$visitor = self::visitor_id();
		$url     = self::current_url();
		$hash    = md5( Samplit_Options::site_key() . "\0" . $visitor );
		$url_key = md5( $url );

		$fresh = get_transient( self::FRESH_PREFIX . $hash );
		if ( is_array( $fresh ) ) {
			if ( isset( $fresh['arms'][ $experiment_key ] ) ) {
				return (string) $fresh['arms'][ $experiment_key ];
			}
			if ( isset( $fresh['urls'][ $url_key ] ) ) {
				return null;
			}
		}
		$stale = get_transient( self::STALE_PREFIX . $hash );
		$stale = is_array( $stale ) ? $stale : null;
		if ( false !== get_transient( self::DOWN_TRANSIENT ) ) {
			return self::arm( $stale, $experiment_key );
		}

		$query = array(
			'url'        => $url,
			'visitor_id' => $visitor,
		);
		$ua    = self::server( 'HTTP_USER_AGENT' );
		if ( '' !== $ua && strlen( $ua ) <= 1024 ) {
			$query['user_agent'] = $ua;
		}
		/**
		 * Filters the visitor's IP address passed to the edge (behind a proxy, return the
		 * client address the proxy reports). An empty string passes none.
		 *
		 * @param string $ip REMOTE_ADDR.
		 */
		$ip = (string) apply_filters( 'samplit_visitor_ip', self::server( 'REMOTE_ADDR' ) );
		if ( '' !== $ip && false !== filter_var( $ip, FILTER_VALIDATE_IP ) ) {
			$query['ip'] = $ip;
		}
		$sticky = array();
		foreach ( array( $stale, $fresh ) as $entry ) {
			if ( is_array( $entry ) && isset( $entry['sticky'] ) && is_array( $entry['sticky'] ) ) {
				$sticky = array_merge( $sticky, $entry['sticky'] );
			}
		}
		if ( $sticky ) {
			$query['sticky'] = http_build_query( $sticky, '', '&', PHP_QUERY_RFC3986 );
		}

		$result = Samplit_Edge::assign( $query, self::TIMEOUT );
		if ( ! $result->ok() || ! is_array( $result->json ) || ! isset( $result->json['assignments'] ) || ! is_array( $result->json['assignments'] ) ) {
			if ( 0 === $result->status || $result->status >= 500 ) {
				set_transient( self::DOWN_TRANSIENT, 1, self::DOWN_TTL );
			}
			return self::arm( $stale, $experiment_key );
		}

		$entry = is_array( $fresh ) ? $fresh : array(
			'arms'   => array(),
			'urls'   => array(),
			'sticky' => array(),
		);
		$entry['sticky'] = $sticky;
		foreach ( $result->json['assignments'] as $a ) {
			if ( ! is_array( $a ) || ! isset( $a['experiment_id'], $a['arm_id'] ) || ! is_string( $a['experiment_id'] ) || ! is_string( $a['arm_id'] ) ) {
				continue;
			}
			$name = isset( $a['element_id'] ) && is_string( $a['element_id'] ) && '' !== $a['element_id']
				? $a['experiment_id'] . ':' . $a['element_id']
				: $a['experiment_id'];
			$entry['arms'][ $name ] = $a['arm_id'];
		}
		if ( isset( $result->json['sticky'] ) && is_array( $result->json['sticky'] ) ) {
			foreach ( $result->json['sticky'] as $k => $token ) {
				if ( is_string( $token ) ) {
					$entry['sticky'][ (string) $k ] = $token;
				}
			}
		}
		$entry['urls'][ $url_key ] = time();
		if ( count( $entry['urls'] ) > self::URLS_MAX ) {
			$entry['urls'] = array_slice( $entry['urls'], -self::URLS_MAX, null, true );
		}
		set_transient( self::FRESH_PREFIX . $hash, $entry, self::FRESH_TTL );
		set_transient( self::STALE_PREFIX . $hash, $entry, self::STALE_TTL );
		return isset( $entry['arms'][ $experiment_key ] ) ? (string) $entry['arms'][ $experiment_key ] : null;
	}

	/**
	 * The visitor id: the samplit_vid cookie, else a new random id set as that cookie for
	 * a year (path /, host-only, SameSite=Lax — the snippet's own cookie).
	 */
	public static function visitor_id(): string {
		$name = Samplit_Options::VISITOR_COOKIE;
		// phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- validated below.
		$id = isset( $_COOKIE[ $name ] ) ? wp_unslash( $_COOKIE[ $name ] ) : '';
		if ( Samplit_Options::valid_visitor_id( $id ) ) {
			return $id;
		}
		$id                = bin2hex( random_bytes( 16 ) );
		$_COOKIE[ $name ] = $id;
		$options           = array(
			'expires'  => time() + 365 * 86400,
			'path'     => '/',
			'secure'   => is_ssl(),
			'httponly' => false,
			'samesite' => 'Lax',
		);
		if ( null !== self::$cookie_sender ) {
			( self::$cookie_sender )( $name, $id, $options );
		} elseif ( ! headers_sent() ) {
			setcookie( $name, $id, $options );
		}
		return $id;
	}

	/** Sends Cache-Control: private for this response (once), and tells page caches to skip it. */
	public static function mark_private(): void {
		if ( self::$marked ) {
			return;
		}
		self::$marked = true;
		if ( ! defined( 'DONOTCACHEPAGE' ) ) {
			define( 'DONOTCACHEPAGE', true ); // WP Super Cache, W3 Total Cache, WP Rocket and others honour it.
		}
		if ( null !== self::$header_sender ) {
			( self::$header_sender )( 'Cache-Control: private, max-age=0' );
		} elseif ( ! headers_sent() ) {
			header( 'Cache-Control: private, max-age=0' );
		}
		/** Fires when samplit_variant() made this response private. */
		do_action( 'samplit_private_response' );
	}

	/**
	 * The page URL the visitor is on: the site's scheme and host, the request's path.
	 */
	public static function current_url(): string {
		$home  = wp_parse_url( home_url( '/' ) );
		$uri   = self::server( 'REQUEST_URI' );
		$scheme = is_array( $home ) && isset( $home['scheme'] ) ? $home['scheme'] : 'https';
		$host   = is_array( $home ) && isset( $home['host'] ) ? $home['host'] : 'localhost';
		$port   = is_array( $home ) && isset( $home['port'] ) ? ':' . $home['port'] : '';
		if ( '' === $uri || '/' !== $uri[0] ) {
			$uri = is_array( $home ) && isset( $home['path'] ) ? $home['path'] : '/';
		}
		$url = $scheme . '://' . $host . $port . $uri;
		/**
		 * Filters the page URL sent to the edge for samplit_variant().
		 *
		 * @param string $url The URL.
		 */
		return (string) apply_filters( 'samplit_variant_url', $url );
	}

	/**
	 * Replaces the header and cookie functions (unit tests), or restores them with null.
	 *
	 * @param callable|null $header Receives a header line.
	 * @param callable|null $cookie Receives (name, value, options).
	 */
	public static function set_senders( ?callable $header, ?callable $cookie ): void {
		self::$header_sender = $header;
		self::$cookie_sender = $cookie;
		self::$marked        = false;
	}

	/**
	 * An arm from a cache entry.
	 *
	 * @param array<string, mixed>|null $entry          Cache entry.
	 * @param string                    $experiment_key Experiment.
	 */
	private static function arm( ?array $entry, string $experiment_key ): ?string {
		return is_array( $entry ) && isset( $entry['arms'][ $experiment_key ] ) && is_string( $entry['arms'][ $experiment_key ] )
			? $entry['arms'][ $experiment_key ]
			: null;
	}

	/**
	 * A $_SERVER value as a string ('' when missing).
	 *
	 * @param string $name Key.
	 */
	private static function server( string $name ): string {
		// phpcs:ignore WordPress.Security.ValidatedSanitizedInput -- sent to the edge, never printed.
		return isset( $_SERVER[ $name ] ) && is_string( $_SERVER[ $name ] ) ? wp_unslash( $_SERVER[ $name ] ) : '';
	}
}
