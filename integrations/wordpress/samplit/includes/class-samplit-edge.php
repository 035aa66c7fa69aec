<?php
/**
 * Signed calls to the Samplit edge: GET /v1/assign, POST /v1/events, and the snippet URL.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The edge API as the plugin uses it.
 */
final class Samplit_Edge {

	/**
	 * The snippet's URL: `{edge}/v1/samplit.js?site={key}`.
	 *
	 * @param string|null $edge     Edge origin (the option when null).
	 * @param string|null $site_key Site key (the option when null).
	 */
	public static function snippet_url( ?string $edge = null, ?string $site_key = null ): string {
		$edge     = $edge ?? Samplit_Options::edge_url();
		$site_key = $site_key ?? Samplit_Options::site_key();
		return $edge . '/v1/samplit.js?site=' . rawurlencode( $site_key );
	}

	/**
	 * Signed `GET /v1/assign`.
	 *
	 * @param array<string, string> $query   Query parameters (site_key is added), in the order to send.
	 * @param float                 $timeout Seconds.
	 */
	public static function assign( array $query, float $timeout = 1.5 ): Samplit_Http_Result {
		$query = array_merge( array( 'site_key' => Samplit_Options::site_key() ), $query );
		$pq    = self::path( '/v1/assign' ) . '?' . http_build_query( $query, '', '&', PHP_QUERY_RFC3986 );
		return Samplit_Http::request(
			'GET',
			self::origin() . $pq,
			array(
				'headers' => array_merge(
					array( 'Accept' => 'application/json' ),
					Samplit_Signer::headers( Samplit_Options::server_secret(), 'GET', $pq, '' )
				),
				'timeout' => $timeout,
			)
		);
	}

	/**
	 * Signed `POST /v1/events` with a raw JSON body.
	 *
	 * @param string $body    JSON text, sent and signed as is.
	 * @param float  $timeout Seconds.
	 */
	public static function events( string $body, float $timeout = 3.0 ): Samplit_Http_Result {
		$path = self::path( '/v1/events' );
		return Samplit_Http::request(
			'POST',
			self::origin() . $path,
			array(
				'headers' => array_merge(
					array(
						'Content-Type' => 'application/json',
						'Accept'       => 'application/json',
					),
					Samplit_Signer::headers( Samplit_Options::server_secret(), 'POST', $path, $body )
				),
				'body'    => $body,
				'timeout' => $timeout,
			)
		);
	}

	/** Whether `GET {edge}/v1/samplit.js?site={key}` answers 200. */
	public static function check_snippet(): Samplit_Http_Result {
		return Samplit_Http::request( 'GET', self::snippet_url(), array( 'timeout' => 10 ) );
	}

	/**
	 * The path of an edge route, including any path prefix of the edge URL (what the edge
	 * sees and verifies).
	 *
	 * @param string $route e.g. /v1/assign.
	 */
	public static function path( string $route ): string {
		$path = wp_parse_url( Samplit_Options::edge_url(), PHP_URL_PATH );
		return rtrim( is_string( $path ) ? $path : '', '/' ) . $route;
	}

	/** The edge's scheme, host and port. */
	private static function origin(): string {
		$parts = wp_parse_url( Samplit_Options::edge_url() );
		if ( ! is_array( $parts ) || empty( $parts['host'] ) ) {
			return '';
		}
		$origin = ( $parts['scheme'] ?? 'https' ) . '://' . $parts['host'];
		if ( isset( $parts['port'] ) ) {
			$origin .= ':' . $parts['port'];
		}
		return $origin;
	}
}
