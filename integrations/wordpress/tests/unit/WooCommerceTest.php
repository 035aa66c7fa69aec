<?php
/**
 * WooCommerce: visitor capture, one signed conversion per paid order, WP-Cron retries.
 *
 * @package Samplit
 */

final class WooCommerceTest extends SamplitTestCase {

	protected function setUp(): void {
		parent::setUp();
		$this->configure();
		Samplit_Test_WP::$orders[ 1001 ] = array(
			'meta'     => array(),
			'total'    => '25000.50',
			'currency' => 'EUR',
		);
	}

	private function meta( string $key ) {
		return Samplit_Test_WP::$orders[ 1001 ]['meta'][ $key ] ?? null;
	}

	private function checkout_with_cookie( string $vid = 'customer-42' ): void {
		$_COOKIE['samplit_vid'] = $vid;
		do_action( 'woocommerce_checkout_order_created', wc_get_order( 1001 ) );
		$_COOKIE = array();
	}

	/** The hooks WooCommerce fires when an order is paid. */
	private function pay(): void {
		do_action( 'woocommerce_payment_complete', 1001 );
		do_action( 'woocommerce_order_status_processing', 1001, wc_get_order( 1001 ) );
	}

	public function test_hpos_compatibility_is_declared_on_before_woocommerce_init(): void {
		$this->assertNotFalse( has_action( 'before_woocommerce_init', array( Samplit_WooCommerce::class, 'declare_compatibility' ) ) );
		if ( ! class_exists( \Automattic\WooCommerce\Utilities\FeaturesUtil::class ) ) {
			eval( 'namespace Automattic\WooCommerce\Utilities; class FeaturesUtil { public static array $calls = array(); public static function declare_compatibility( $feature, $file, $ok = true ) { self::$calls[] = array( $feature, $file, $ok ); return true; } }' );
		}
		do_action( 'before_woocommerce_init' );
		$this->assertContains( array( 'custom_order_tables', SAMPLIT_PLUGIN_FILE, true ), \Automattic\WooCommerce\Utilities\FeaturesUtil::$calls );
	}

	public function test_the_cookie_is_copied_into_order_meta_at_checkout_classic_and_block(): void {
		$this->checkout_with_cookie();
		$this->assertSame( 'customer-42', $this->meta( '_samplit_vid' ) );
		Samplit_Test_WP::$orders[ 1001 ]['meta'] = array();
		$_COOKIE['samplit_vid']                   = 'customer-43';
		do_action( 'woocommerce_store_api_checkout_order_processed', wc_get_order( 1001 ) );
		$this->assertSame( 'customer-43', $this->meta( '_samplit_vid' ) );
		Samplit_Test_WP::$orders[ 1001 ]['meta'] = array();
		$_COOKIE['samplit_vid']                   = 'bad;id';
		do_action( 'woocommerce_checkout_order_created', wc_get_order( 1001 ) );
		$this->assertNull( $this->meta( '_samplit_vid' ) );
	}

	public function test_a_paid_order_is_sent_once_signed_with_revenue_currency_and_id(): void {
		$this->checkout_with_cookie();
		Samplit_Test_WP::respond( 202, array( 'accepted' => 1 ) );
		$this->pay();
		do_action( 'woocommerce_order_status_completed', 1001, wc_get_order( 1001 ) );
		$this->assertCount( 1, Samplit_Test_WP::$requests, 'three hooks, one send' );
		$req = Samplit_Test_WP::$requests[0];
		$this->assertSame( 'POST', $req['method'] );
		$this->assertSame( self::EDGE . '/v1/events', $req['url'] );
		$this->assertSame( 3.0, $req['args']['timeout'] );
		$this->assertSame( 'application/json', $this->header( $req, 'Content-Type' ) );
		$this->assertSame(
			'{"site_key":"pk_abc","visitor_id":"customer-42","events":[{"type":"conversion","goal":"purchase","value":25000.5,"currency":"EUR","id":"wc-order:1001"}]}',
			$req['args']['body']
		);
		$ts = $this->header( $req, 'X-Samplit-Timestamp' );
		$this->assertSame( 'v1=' . $this->openssl_hmac( self::SECRET, $ts . "\nPOST\n/v1/events\n" . $req['args']['body'] ), $this->header( $req, 'X-Samplit-Signature' ) );
		$this->assertNotNull( $this->meta( '_samplit_sent' ) );

		// A later request (fresh process): the meta stops it.
		Samplit_WooCommerce::reset();
		do_action( 'woocommerce_order_status_completed', 1001, wc_get_order( 1001 ) );
		$this->assertCount( 1, Samplit_Test_WP::$requests );
		$this->assertSame( array(), Samplit_Test_WP::$cron );
	}

	public function test_no_visitor_nothing_sent(): void {
		$this->pay();
		do_action( 'woocommerce_order_status_completed', 1001, wc_get_order( 1001 ) );
		$this->assertSame( array(), Samplit_Test_WP::$requests );
		$this->assertSame( array(), Samplit_Test_WP::$cron );
	}

	public function test_an_unknown_order_is_ignored(): void {
		do_action( 'woocommerce_payment_complete', 999 );
		$this->assertSame( array(), Samplit_Test_WP::$requests );
	}

	public function test_a_failure_is_retried_from_wp_cron_with_backoff_until_it_succeeds_once(): void {
		$this->checkout_with_cookie();
		Samplit_Test_WP::fail();
		$this->pay();
		$this->assertCount( 1, Samplit_Test_WP::$requests, 'the second hook of the same payment does not resend' );
		$this->assertSame( '1', $this->meta( '_samplit_attempts' ) );
		$this->assertNull( $this->meta( '_samplit_sent' ) );
		$this->assertCount( 1, Samplit_Test_WP::$cron );
		$this->assertSame( 'samplit_retry_order', Samplit_Test_WP::$cron[0]['hook'] );
		$this->assertSame( array( 1001 ), Samplit_Test_WP::$cron[0]['args'] );
		$this->assertEqualsWithDelta( time() + 60, Samplit_Test_WP::$cron[0]['timestamp'], 2 );

		// Another request fires a status hook while the retry is queued: the retry owns it.
		Samplit_WooCommerce::reset();
		do_action( 'woocommerce_order_status_completed', 1001, wc_get_order( 1001 ) );
		$this->assertCount( 1, Samplit_Test_WP::$requests );

		// The edge is still down (a 503): next retry after 300 s.
		Samplit_WooCommerce::reset();
		Samplit_Test_WP::respond( 503, array( 'error' => array( 'code' => 'queue_unavailable', 'message' => 'the queue is unavailable' ) ) );
		$this->assertSame( 1, samplit_test_run_cron( 'samplit_retry_order' ) );
		$this->assertSame( '2', $this->meta( '_samplit_attempts' ) );
		$this->assertStringContainsString( '503', (string) $this->meta( '_samplit_error' ) );
		$this->assertEqualsWithDelta( time() + 300, Samplit_Test_WP::$cron[0]['timestamp'], 2 );

		// The edge is back: the same event (same id) is sent, once.
		Samplit_WooCommerce::reset();
		Samplit_Test_WP::respond( 202, array( 'accepted' => 1 ) );
		$this->assertSame( 1, samplit_test_run_cron( 'samplit_retry_order' ) );
		$this->assertCount( 3, Samplit_Test_WP::$requests );
		$this->assertSame( Samplit_Test_WP::$requests[0]['args']['body'], Samplit_Test_WP::$requests[2]['args']['body'], 'same event id: the edge dedupes a resend' );
		$this->assertNotNull( $this->meta( '_samplit_sent' ) );
		$this->assertSame( array(), Samplit_Test_WP::$cron );

		// Later hooks: nothing more.
		Samplit_WooCommerce::reset();
		do_action( 'woocommerce_order_status_completed', 1001, wc_get_order( 1001 ) );
		$this->assertCount( 3, Samplit_Test_WP::$requests );
	}

	public function test_it_gives_up_after_eight_attempts(): void {
		$this->checkout_with_cookie();
		Samplit_Test_WP::fail();
		$this->pay();
		$delays = array( Samplit_Test_WP::$cron[0]['timestamp'] - time() );
		for ( $i = 2; $i <= 8; $i++ ) {
			Samplit_Test_WP::fail();
			$this->assertSame( 1, samplit_test_run_cron( 'samplit_retry_order' ) );
			if ( Samplit_Test_WP::$cron ) {
				$delays[] = Samplit_Test_WP::$cron[0]['timestamp'] - time();
			}
		}
		$this->assertCount( 8, Samplit_Test_WP::$requests );
		$this->assertSame( '8', $this->meta( '_samplit_attempts' ) );
		$this->assertSame( array(), Samplit_Test_WP::$cron, 'no ninth attempt' );
		$this->assertSame( array( 60, 300, 900, 3600, 7200, 14400, 28800 ), array_map( static fn ( $d ) => (int) ( round( $d / 60 ) * 60 ), $delays ) );
	}

	public function test_a_refused_event_is_not_retried(): void {
		$this->checkout_with_cookie();
		Samplit_Test_WP::respond( 422, array( 'error' => array( 'code' => 'invalid_value', 'message' => 'events[0]: value must be a number' ) ) );
		$this->pay();
		$this->assertSame( array(), Samplit_Test_WP::$cron );
		$this->assertStringContainsString( 'value must be a number', (string) $this->meta( '_samplit_error' ) );
	}

	public function test_an_odd_currency_is_left_out(): void {
		Samplit_Test_WP::$orders[ 1001 ]['currency'] = 'EURO';
		Samplit_Test_WP::$orders[ 1001 ]['total']    = '10';
		$body = json_decode( Samplit_WooCommerce::body( wc_get_order( 1001 ), 'v' ), true );
		$this->assertArrayNotHasKey( 'currency', $body['events'][0] );
		$this->assertSame( 10.0, $body['events'][0]['value'] );
	}

	public function test_unsigned_sends_are_never_made(): void {
		delete_option( Samplit_Options::SERVER_SECRET );
		$this->checkout_with_cookie();
		$this->pay();
		$this->assertSame( array(), Samplit_Test_WP::$requests );
	}
}
