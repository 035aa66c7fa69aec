<?php
/**
 * Small helpers over the WordPress HTTP API.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The outcome of one HTTP call: status (0 when the request failed), decoded JSON body
 * (null when not JSON) and a human-readable error when it was not a 2xx.
 */
final class Samplit_Http_Result {

	/**
	 * Builds a result.
	 *
	 * @param int        $status HTTP status, 0 when no response arrived.
	 * @param mixed      $json   Decoded JSON body, or null.
	 * @param string     $error  Human-readable error ('' on success).
	 * @param string     $code   Machine-readable error code ('' on success).
	 */
	public function __construct(
		public readonly int $status,
		public readonly mixed $json,
		public readonly string $error = '',
		public readonly string $code = ''
	) {}

	/** Whether the status is 2xx. */
	public function ok(): bool {
		return $this->status >= 200 && $this->status < 300;
	}
}

/**
 * Request helpers.
 */
final class Samplit_Http {

	/**
	 * The User-Agent of the plugin's outgoing calls. WordPress's default ("WordPress/x.y;
	 * site") is on the edge's bot list, which would exclude a server-side assignment.
	 */
	public const USER_AGENT = 'Mozilla/5.0 (Samplit-WP server)';

	/**
	 * Performs a request and turns it into a result.
	 *
	 * @param string               $method  GET or POST.
	 * @param string               $url     Full URL.
	 * @param array<string, mixed> $args    wp_remote_request() arguments (headers, body, timeout).
	 */
	public static function request( string $method, string $url, array $args = array() ): Samplit_Http_Result {
		$args = array_merge(
			array(
				'timeout'     => 10,
				'redirection' => 0,
				'user-agent'  => self::USER_AGENT,
			),
			$args
		);
		$args['method'] = $method;
		$response       = 'POST' === $method ? wp_remote_post( $url, $args ) : wp_remote_get( $url, $args );
		return self::result( $response );
	}

	/**
	 * Turns a wp_remote_* answer into a result; a problem+json body's `detail` becomes
	 * the error text.
	 *
	 * @param array<string, mixed>|WP_Error $response The answer.
	 */
	public static function result( $response ): Samplit_Http_Result {
		if ( is_wp_error( $response ) ) {
			return new Samplit_Http_Result(
				0,
				null,
				/* translators: %s: the HTTP client's error message. */
				sprintf( __( 'The request failed: %s', 'samplit' ), $response->get_error_message() ),
				'request_failed'
			);
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		$body   = (string) wp_remote_retrieve_body( $response );
		$json   = '' === $body ? null : json_decode( $body, true );
		if ( $status >= 200 && $status < 300 ) {
			return new Samplit_Http_Result( $status, $json );
		}
		$detail = '';
		$code   = '';
		if ( is_array( $json ) ) {
			// problem+json: {status, code, detail}; the edge answers {"error": {code, message}}.
			if ( isset( $json['detail'] ) && is_string( $json['detail'] ) ) {
				$detail = $json['detail'];
			} elseif ( isset( $json['error']['message'] ) && is_string( $json['error']['message'] ) ) {
				$detail = $json['error']['message'];
			} elseif ( isset( $json['title'] ) && is_string( $json['title'] ) ) {
				$detail = $json['title'];
			}
			if ( isset( $json['code'] ) && is_string( $json['code'] ) ) {
				$code = $json['code'];
			} elseif ( isset( $json['error']['code'] ) && is_string( $json['error']['code'] ) ) {
				$code = $json['error']['code'];
			}
		}
		if ( '' === $detail ) {
			/* translators: %d: HTTP status code. */
			$detail = sprintf( __( 'HTTP %d', 'samplit' ), $status );
		}
		return new Samplit_Http_Result( $status, $json, $detail, '' === $code ? 'http_' . $status : $code );
	}
}
