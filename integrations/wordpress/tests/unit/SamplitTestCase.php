<?php
/**
 * Base test case: a clean WordPress stand-in per test, the plugin configured or not.
 *
 * @package Samplit
 */

use PHPUnit\Framework\TestCase;

abstract class SamplitTestCase extends TestCase {

	public const SECRET = 'ss_BnUlfcp3PE-hTtbVdFHC9hrTMJAsDO0d1TNXL8_KPFI';
	public const SITE_KEY = 'pk_abc';
	public const EDGE = 'https://edge.example.net';
	public const CP = 'https://app.samplit.example';

	protected function setUp(): void {
		Samplit_Test_WP::reset();
		Samplit_WooCommerce::reset();
		Samplit_Variant::set_senders( null, null );
	}

	/** Options as after a connection. */
	protected function configure( bool $with_secret = true ): void {
		update_option( Samplit_Options::CONTROL_PLANE_URL, self::CP );
		update_option( Samplit_Options::SITE_KEY, self::SITE_KEY );
		update_option( Samplit_Options::EDGE_URL, self::EDGE );
		if ( $with_secret ) {
			Samplit_Options::store_secret( Samplit_Options::SERVER_SECRET, self::SECRET );
		}
	}

	/** Output of a callable. */
	protected function capture( callable $fn ): string {
		ob_start();
		try {
			$fn();
		} finally {
			$out = (string) ob_get_clean();
		}
		return $out;
	}

	/** Lower-hex HMAC-SHA256 computed by openssl (independently of the plugin). */
	protected function openssl_hmac( string $key, string $message ): string {
		$cmd  = 'openssl dgst -sha256 -hmac ' . escapeshellarg( $key ) . ' -r';
		$proc = proc_open( $cmd, array( array( 'pipe', 'r' ), array( 'pipe', 'w' ), array( 'pipe', 'w' ) ), $pipes );
		$this->assertIsResource( $proc, 'openssl is needed for this test' );
		fwrite( $pipes[0], $message );
		fclose( $pipes[0] );
		$out = stream_get_contents( $pipes[1] );
		fclose( $pipes[1] );
		fclose( $pipes[2] );
		$this->assertSame( 0, proc_close( $proc ), 'openssl failed' );
		return strtok( (string) $out, ' ' );
	}

	/** The header of a recorded request (case-insensitive name). */
	protected function header( array $request, string $name ): ?string {
		foreach ( $request['args']['headers'] ?? array() as $k => $v ) {
			if ( 0 === strcasecmp( $k, $name ) ) {
				return $v;
			}
		}
		return null;
	}
}
