<?php
/**
 * Signed server calls to the edge (docs/api.md "Signed server calls").
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * `X-Samplit-Signature: v1=<lower hex HMAC-SHA256>` keyed with the server secret's text
 * (`ss_` included) over `timestamp "\n" METHOD "\n" path-with-query "\n" body`.
 */
final class Samplit_Signer {

	public const TIMESTAMP_HEADER = 'X-Samplit-Timestamp';
	public const SIGNATURE_HEADER = 'X-Samplit-Signature';

	/**
	 * The signature header's value.
	 *
	 * @param string $secret          The server secret.
	 * @param int    $timestamp       Unix seconds.
	 * @param string $method          HTTP method.
	 * @param string $path_and_query  The path and query exactly as sent (percent-encoded).
	 * @param string $body            The raw body ('' for a GET).
	 */
	public static function sign( string $secret, int $timestamp, string $method, string $path_and_query, string $body ): string {
		$message = $timestamp . "\n" . strtoupper( $method ) . "\n" . $path_and_query . "\n" . $body;
		return 'v1=' . hash_hmac( 'sha256', $message, $secret );
	}

	/**
	 * The two headers of a signed call.
	 *
	 * @param string   $secret         The server secret.
	 * @param string   $method         HTTP method.
	 * @param string   $path_and_query The path and query exactly as sent.
	 * @param string   $body           The raw body.
	 * @param int|null $timestamp      Unix seconds (now when null).
	 * @return array<string, string>
	 */
	public static function headers( string $secret, string $method, string $path_and_query, string $body, ?int $timestamp = null ): array {
		$timestamp = $timestamp ?? time();
		return array(
			self::TIMESTAMP_HEADER => (string) $timestamp,
			self::SIGNATURE_HEADER => self::sign( $secret, $timestamp, $method, $path_and_query, $body ),
		);
	}
}
