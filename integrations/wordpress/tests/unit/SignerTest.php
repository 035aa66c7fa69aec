<?php
/**
 * The request signature (docs/api.md "Signed server calls").
 *
 * @package Samplit
 */

final class SignerTest extends SamplitTestCase {

	public function test_the_pinned_vector_of_shared_engine_server_call_rs(): void {
		// shared-engine/src/server_call.rs the_server_secret_and_the_request_signature_are_pinned.
		$this->assertSame(
			'v1=cd482347e36b5f0bbfad4a996d25685b4800a974ff7b6849837e5a987af867e6',
			Samplit_Signer::sign( self::SECRET, 1700000000, 'POST', '/v1/events', '{"site_key":"pk_abc"}' )
		);
	}

	public function test_a_get_signature_equals_openssl_over_the_documented_message(): void {
		$pq       = '/v1/assign?site_key=pk_abc&url=https%3A%2F%2Fshop.example.com%2F&visitor_id=customer-42';
		$expected = $this->openssl_hmac( self::SECRET, "1700000123\nGET\n" . $pq . "\n" );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{64}$/', $expected );
		$this->assertSame( 'v1=' . $expected, Samplit_Signer::sign( self::SECRET, 1700000123, 'get', $pq, '' ) );
		$headers = Samplit_Signer::headers( self::SECRET, 'GET', $pq, '', 1700000123 );
		$this->assertSame(
			array(
				'X-Samplit-Timestamp' => '1700000123',
				'X-Samplit-Signature' => 'v1=' . $expected,
			),
			$headers
		);
	}

	public function test_an_events_call_is_signed_over_the_exact_path_and_body_sent(): void {
		$this->configure();
		update_option( Samplit_Options::EDGE_URL, 'https://edge.example.net/prefix/' );
		Samplit_Test_WP::respond( 202, array( 'accepted' => 1 ) );
		$body = '{"site_key":"pk_abc","visitor_id":"v1","events":[]}';
		$this->assertTrue( Samplit_Edge::events( $body )->ok() );
		$req = Samplit_Test_WP::$requests[0];
		$this->assertSame( 'https://edge.example.net/prefix/v1/events', $req['url'] );
		$this->assertSame( $body, $req['args']['body'] );
		$this->assertSame( 3.0, $req['args']['timeout'] );
		$this->assertSame( 'application/json', $this->header( $req, 'Content-Type' ) );
		$ts = $this->header( $req, 'X-Samplit-Timestamp' );
		$this->assertMatchesRegularExpression( '/^\d{10}$/', (string) $ts );
		$this->assertLessThanOrEqual( 5, abs( time() - (int) $ts ) );
		$this->assertSame(
			'v1=' . $this->openssl_hmac( self::SECRET, $ts . "\nPOST\n/prefix/v1/events\n" . $body ),
			$this->header( $req, 'X-Samplit-Signature' )
		);
	}
}
