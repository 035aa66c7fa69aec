<?php
/**
 * The one-click connection: state, code exchange, domain verification, test, disconnect.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Connection flows. Each returns notices as a list of [type, message] (type: success,
 * error, warning, info) for the settings page to show.
 */
final class Samplit_Connect {

	/** Prefix of the user-scoped state transient. */
	public const STATE_PREFIX = 'samplit_state_';
	/** How long a state is valid, in seconds. */
	public const STATE_TTL = 600;

	/**
	 * Starts a connection: stores a new one-time state for the current user and answers
	 * the console URL to send the admin to ('' when the control plane URL is not set).
	 */
	public static function start(): string {
		if ( '' === Samplit_Options::control_plane_url() ) {
			return '';
		}
		$state = bin2hex( random_bytes( 32 ) );
		set_transient( self::state_key(), $state, self::STATE_TTL );
		return Samplit_Control_Plane::connect_url( $state );
	}

	/**
	 * Completes a connection: the console sent the admin back with code and state.
	 * The state must equal the current user's pending one (deleted once matched: a
	 * replayed or foreign state is refused and nothing is exchanged).
	 *
	 * @param mixed $code  The one-time code.
	 * @param mixed $state The state we sent.
	 * @return array<int, array{0: string, 1: string}>
	 */
	public static function finish( $code, $state ): array {
		$expected = get_transient( self::state_key() );
		if ( ! is_string( $state ) || ! is_string( $expected ) || '' === $expected || ! hash_equals( $expected, $state ) ) {
			return array( array( 'error', __( 'The connection could not be completed: the request did not come from this connection attempt (state mismatch, or it expired). Please click "Connect to Samplit" again.', 'samplit' ) ) );
		}
		delete_transient( self::state_key() );
		if ( ! is_string( $code ) || 1 !== preg_match( '/^[A-Za-z0-9._~+\/=-]{1,512}$/', $code ) ) {
			return array( array( 'error', __( 'The connection could not be completed: the console returned no valid code.', 'samplit' ) ) );
		}

		$result = Samplit_Control_Plane::exchange( $code );
		if ( ! $result->ok() ) {
			/* translators: %s: the control plane's explanation. */
			return array( array( 'error', sprintf( __( 'Samplit refused the connection: %s', 'samplit' ), $result->error ) ) );
		}
		$data  = is_array( $result->json ) ? $result->json : array();
		$stored = self::store_exchange( $data );
		if ( true !== $stored ) {
			return array( array( 'error', $stored ) );
		}
		$notices   = array( array( 'success', __( 'Connected to Samplit. The snippet is now on your pages.', 'samplit' ) ) );
		$notices[] = self::verify();
		return $notices;
	}

	/**
	 * Validates and stores an exchange answer.
	 *
	 * @param array<string, mixed> $data The answer.
	 * @return true|string True, or why it was refused.
	 */
	public static function store_exchange( array $data ) {
		$site_key = isset( $data['site_key'] ) && is_string( $data['site_key'] ) ? $data['site_key'] : '';
		$edge_url = isset( $data['edge_url'] ) && is_string( $data['edge_url'] ) ? Samplit_Options::clean_url( $data['edge_url'] ) : '';
		$secret   = $data['server_secret'] ?? null;
		$token    = $data['connection_token'] ?? null;
		$verify   = isset( $data['verification'] ) && is_array( $data['verification'] ) ? $data['verification'] : array();
		$vtoken   = $verify['token'] ?? null;
		if ( ! Samplit_Options::valid_site_key( $site_key ) || '' === $edge_url || ! Samplit_Options::valid_token( $secret ) || ! Samplit_Options::valid_token( $token ) || ! Samplit_Options::valid_token( $vtoken ) ) {
			return __( 'Samplit answered the connection with incomplete data; nothing was stored. Please try again.', 'samplit' );
		}
		update_option( Samplit_Options::SITE_KEY, $site_key );
		update_option( Samplit_Options::EDGE_URL, $edge_url );
		Samplit_Options::store_secret( Samplit_Options::SERVER_SECRET, $secret );
		Samplit_Options::store_secret( Samplit_Options::CONNECTION_TOKEN, $token );
		update_option( Samplit_Options::VERIFICATION_TOKEN, $vtoken );
		update_option(
			Samplit_Options::CONNECTION_INFO,
			array(
				'site_id'       => isset( $data['site_id'] ) && is_scalar( $data['site_id'] ) ? (string) $data['site_id'] : '',
				'host'          => isset( $data['host'] ) && is_string( $data['host'] ) ? $data['host'] : '',
				'domain_status' => 'pending',
			),
			false
		);
		return true;
	}

	/**
	 * Asks the control plane to verify the host (it fetches our well-known file).
	 *
	 * @return array{0: string, 1: string}
	 */
	public static function verify(): array {
		if ( '' === Samplit_Options::connection_token() || '' === Samplit_Options::control_plane_url() ) {
			return array( 'error', __( 'Connect to Samplit first: domain verification needs the connection.', 'samplit' ) );
		}
		$result = Samplit_Control_Plane::verify();
		$info   = Samplit_Options::connection_info();
		if ( $result->ok() && is_array( $result->json ) && isset( $result->json['status'] ) && 'verified' === $result->json['status'] ) {
			$info['domain_status'] = 'verified';
			if ( isset( $result->json['host'] ) && is_string( $result->json['host'] ) ) {
				$info['host'] = $result->json['host'];
			}
			update_option( Samplit_Options::CONNECTION_INFO, $info, false );
			/* translators: %s: the host name. */
			return array( 'success', sprintf( __( 'Domain verified: %s.', 'samplit' ), '' !== $info['host'] ? $info['host'] : home_url() ) );
		}
		$info['domain_status'] = 'unverified';
		update_option( Samplit_Options::CONNECTION_INFO, $info, false );
		$why = $result->ok() ? __( 'unexpected answer', 'samplit' ) : $result->error;
		/* translators: %s: what the control plane found. */
		return array( 'warning', sprintf( __( 'The domain is not verified yet: %s. Click "Verify domain" to retry.', 'samplit' ), $why ) );
	}

	/**
	 * Disconnects: revokes on the control plane (when connected), then deletes the local
	 * connection options whatever the answer.
	 *
	 * @return array<int, array{0: string, 1: string}>
	 */
	public static function disconnect(): array {
		$notices = array();
		if ( '' !== Samplit_Options::connection_token() && '' !== Samplit_Options::control_plane_url() ) {
			$result = Samplit_Control_Plane::disconnect();
			if ( ! $result->ok() ) {
				/* translators: %s: the error. */
				$notices[] = array( 'warning', sprintf( __( 'Samplit could not be told about the disconnection (%s); the connection was removed from this site anyway. Revoke it in the Samplit console if needed.', 'samplit' ), $result->error ) );
			}
		}
		foreach ( Samplit_Options::connection() as $name ) {
			delete_option( $name );
		}
		$notices[] = array( 'success', __( 'Disconnected from Samplit. The snippet is no longer printed.', 'samplit' ) );
		return $notices;
	}

	/**
	 * Tests the connection: the control plane's view (site, host, experiments) and the
	 * edge's snippet.
	 *
	 * @return array{notices: array<int, array{0: string, 1: string}>, site: array<string, string>, experiments: array<int, array{id: string, name: string, status: string}>}
	 */
	public static function test(): array {
		$out = array(
			'notices'     => array(),
			'site'        => array(),
			'experiments' => array(),
		);
		if ( '' !== Samplit_Options::connection_token() && '' !== Samplit_Options::control_plane_url() ) {
			$result = Samplit_Control_Plane::connection();
			if ( $result->ok() && is_array( $result->json ) ) {
				$json        = $result->json;
				$site        = isset( $json['site'] ) && is_array( $json['site'] ) ? $json['site'] : array();
				$out['site'] = array(
					'id'            => self::text( $site['id'] ?? '' ),
					'name'          => self::text( $site['name'] ?? '' ),
					'site_key'      => self::text( $site['site_key'] ?? '' ),
					'host'          => self::text( $json['host'] ?? '' ),
					'domain_status' => self::text( $json['domain_status'] ?? '' ),
				);
				foreach ( ( isset( $json['experiments'] ) && is_array( $json['experiments'] ) ) ? $json['experiments'] : array() as $e ) {
					if ( is_array( $e ) ) {
						$out['experiments'][] = array(
							'id'     => self::text( $e['id'] ?? '' ),
							'name'   => self::text( $e['name'] ?? '' ),
							'status' => self::text( $e['status'] ?? '' ),
						);
					}
				}
				if ( '' !== $out['site']['domain_status'] ) {
					$info                  = Samplit_Options::connection_info();
					$info['domain_status'] = $out['site']['domain_status'];
					if ( '' !== $out['site']['host'] ) {
						$info['host'] = $out['site']['host'];
					}
					update_option( Samplit_Options::CONNECTION_INFO, $info, false );
				}
				$out['notices'][] = array( 'success', __( 'The Samplit control plane answered.', 'samplit' ) );
			} else {
				/* translators: %s: the error. */
				$out['notices'][] = array( 'error', sprintf( __( 'The Samplit control plane refused the connection check: %s', 'samplit' ), $result->error ) );
			}
		} else {
			$out['notices'][] = array( 'info', __( 'Not connected through the Samplit console: only the edge was checked.', 'samplit' ) );
		}
		if ( Samplit_Options::snippet_configured() ) {
			$edge = Samplit_Edge::check_snippet();
			if ( 200 === $edge->status ) {
				/* translators: %s: the snippet URL. */
				$out['notices'][] = array( 'success', sprintf( __( 'The edge serves the snippet (%s answered 200).', 'samplit' ), Samplit_Edge::snippet_url() ) );
			} else {
				/* translators: 1: the snippet URL, 2: the error. */
				$out['notices'][] = array( 'error', sprintf( __( 'The edge does not serve the snippet: %1$s answered %2$s.', 'samplit' ), Samplit_Edge::snippet_url(), 0 === $edge->status ? $edge->error : (string) $edge->status ) );
			}
		} else {
			$out['notices'][] = array( 'error', __( 'The site key or the edge URL is missing: the snippet is not printed.', 'samplit' ) );
		}
		return $out;
	}

	/** The current user's state transient name. */
	public static function state_key(): string {
		return self::STATE_PREFIX . get_current_user_id();
	}

	/**
	 * A scalar as a string, anything else ''.
	 *
	 * @param mixed $value Value.
	 */
	private static function text( $value ): string {
		return is_scalar( $value ) ? (string) $value : '';
	}
}
