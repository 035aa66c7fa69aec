<?php
/**
 * Serves /.well-known/samplit-verification.txt for the control plane's host check.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The verification file.
 */
final class Samplit_Verification {

	/** Registers the hook: early, before WordPress parses the request or loads a theme. */
	public static function register(): void {
		add_action( 'init', array( self::class, 'maybe_serve' ), 0 );
	}

	/**
	 * Whether a request URI asks for the verification file.
	 *
	 * @param string $request_uri The REQUEST_URI.
	 */
	public static function matches( string $request_uri ): bool {
		$path = wp_parse_url( $request_uri, PHP_URL_PATH );
		return is_string( $path ) && Samplit_Options::VERIFICATION_PATH === $path;
	}

	/**
	 * The answer for the verification path: [status, body].
	 *
	 * @return array{0: int, 1: string}
	 */
	public static function response(): array {
		$token = Samplit_Options::verification_token();
		if ( '' === $token ) {
			return array( 404, "Not found\n" );
		}
		return array( 200, $token );
	}

	/** The init callback: answers and exits on the verification path. */
	public static function maybe_serve(): void {
		$uri = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- compared, never printed.
		$method = isset( $_SERVER['REQUEST_METHOD'] ) ? strtoupper( (string) $_SERVER['REQUEST_METHOD'] ) : 'GET'; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		if ( ! self::matches( $uri ) || ! in_array( $method, array( 'GET', 'HEAD' ), true ) ) {
			return;
		}
		[ $status, $body ] = self::response();
		status_header( $status );
		if ( ! headers_sent() ) {
			header( 'Content-Type: text/plain; charset=utf-8' );
			header( 'Cache-Control: no-store' );
			header( 'X-Content-Type-Options: nosniff' );
		}
		if ( 'HEAD' !== $method ) {
			// phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- text/plain; the token is validated when stored.
			echo $body;
		}
		exit;
	}
}
