<?php
/**
 * Calls to the Samplit control plane's /api/v1/wordpress/* endpoints.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The control plane's WordPress endpoints: exchange, verify, connection, disconnect.
 */
final class Samplit_Control_Plane {

	/**
	 * The console page the Connect button sends the admin to.
	 *
	 * @param string $state The one-time state.
	 */
	public static function connect_url( string $state ): string {
		return Samplit_Options::control_plane_url() . '/app/connect/wordpress'
			. '?site_url=' . rawurlencode( home_url() )
			. '&return_url=' . rawurlencode( Samplit_Admin::page_url() )
			. '&state=' . rawurlencode( $state );
	}

	/**
	 * `POST /api/v1/wordpress/exchange` with `{"code", "site_url"}`.
	 *
	 * @param string $code The one-time code the console returned.
	 */
	public static function exchange( string $code ): Samplit_Http_Result {
		$body = wp_json_encode(
			array(
				'code'     => $code,
				'site_url' => home_url(),
			)
		);
		return Samplit_Http::request(
			'POST',
			self::endpoint( 'exchange' ),
			array(
				'headers' => array(
					'Content-Type' => 'application/json',
					'Accept'       => 'application/json',
				),
				'body'    => (string) $body,
				'timeout' => 15,
			)
		);
	}

	/** `POST /api/v1/wordpress/verify` (the control plane fetches our well-known file). */
	public static function verify(): Samplit_Http_Result {
		return Samplit_Http::request(
			'POST',
			self::endpoint( 'verify' ),
			array(
				'headers' => self::bearer(),
				'body'    => '',
				'timeout' => 30,
			)
		);
	}

	/** `GET /api/v1/wordpress/connection`. */
	public static function connection(): Samplit_Http_Result {
		return Samplit_Http::request(
			'GET',
			self::endpoint( 'connection' ),
			array(
				'headers' => self::bearer(),
				'timeout' => 10,
			)
		);
	}

	/** `POST /api/v1/wordpress/disconnect` (204). */
	public static function disconnect(): Samplit_Http_Result {
		return Samplit_Http::request(
			'POST',
			self::endpoint( 'disconnect' ),
			array(
				'headers' => self::bearer(),
				'body'    => '',
				'timeout' => 10,
			)
		);
	}

	/**
	 * The URL of an endpoint.
	 *
	 * @param string $name exchange, verify, connection or disconnect.
	 */
	private static function endpoint( string $name ): string {
		return Samplit_Options::control_plane_url() . '/api/v1/wordpress/' . $name;
	}

	/**
	 * Authorization and Accept headers.
	 *
	 * @return array<string, string>
	 */
	private static function bearer(): array {
		return array(
			'Authorization' => 'Bearer ' . Samplit_Options::connection_token(),
			'Accept'        => 'application/json',
		);
	}
}
