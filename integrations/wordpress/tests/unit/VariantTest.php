<?php
/**
 * samplit_variant(): signed GET /v1/assign, per-visitor cache, stale fallback, private.
 *
 * @package Samplit
 */

final class VariantTest extends SamplitTestCase {

	private const EXP = '11111111-1111-4111-8111-111111111111';

	/** @var string[] */
	private array $headers = array();
	/** @var array<int, array> */
	private array $cookies = array();

	protected function setUp(): void {
		parent::setUp();
		$this->headers = array();
		$this->cookies = array();
		Samplit_Variant::set_senders(
			function ( string $h ): void {
				$this->headers[] = $h;
			},
			function ( string $name, string $value, array $options ): void {
				$this->cookies[] = array( $name, $value, $options );
			}
		);
		$_SERVER['REQUEST_URI']     = '/pricing/?plan=pro';
		$_SERVER['HTTP_USER_AGENT'] = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0';
		$_SERVER['REMOTE_ADDR']     = '198.51.100.7';
	}

	private function answer( string $arm ): array {
		return array(
			'site_key'         => self::SITE_KEY,
			'visitor_id'       => 'customer-42',
			'snapshot_version' => 3,
			'excluded'         => null,
			'assignments'      => array(
				array(
					'experiment_id' => self::EXP,
					'element_id'    => null,
					'arm_id'        => $arm,
					'variant_ids'   => array( 'v1' ),
					'changes'       => array(),
					'propensity'    => 0.5,
					'sticky'        => false,
					'sticky_key'    => self::EXP,
				),
			),
			'goals'            => array(),
			'sticky'           => array( self::EXP => $arm . '.va_mac' ),
		);
	}

	public function test_nothing_without_the_server_secret(): void {
		$this->configure( false );
		$this->assertNull( samplit_variant( self::EXP ) );
		$this->assertSame( array(), Samplit_Test_WP::$requests );
	}

	public function test_a_signed_assign_for_the_cookie_visitor_returns_the_arm(): void {
		$this->configure();
		$_COOKIE['samplit_vid'] = 'customer-42';
		Samplit_Test_WP::respond( 200, $this->answer( 'treatment' ) );
		$this->assertSame( 'treatment', samplit_variant( self::EXP ) );
		$this->assertSame( array( 'Cache-Control: private, max-age=0' ), $this->headers );
		$this->assertTrue( defined( 'DONOTCACHEPAGE' ) );
		$this->assertSame( array(), $this->cookies, 'the visitor had a cookie' );

		$req = Samplit_Test_WP::$requests[0];
		$this->assertSame( 'GET', $req['method'] );
		$this->assertSame( 1.5, $req['args']['timeout'] );
		$parts = parse_url( $req['url'] );
		$this->assertSame( 'edge.example.net', $parts['host'] );
		$this->assertSame( '/v1/assign', $parts['path'] );
		parse_str( $parts['query'], $q );
		$this->assertSame( self::SITE_KEY, $q['site_key'] );
		$this->assertSame( 'customer-42', $q['visitor_id'] );
		$this->assertSame( 'https://shop.example.com/pricing/?plan=pro', $q['url'] );
		$this->assertSame( 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0', $q['user_agent'] );
		$this->assertSame( '198.51.100.7', $q['ip'] );
		$pq = $parts['path'] . '?' . $parts['query'];
		$ts = $this->header( $req, 'X-Samplit-Timestamp' );
		$this->assertSame( 'v1=' . $this->openssl_hmac( self::SECRET, $ts . "\nGET\n" . $pq . "\n" ), $this->header( $req, 'X-Samplit-Signature' ) );
		$this->assertStringNotContainsString( 'ordpress', strtolower( $req['args']['user-agent'] ), 'WordPress is on the edge bot list' );
	}

	public function test_the_answer_is_cached_per_visitor_and_the_sticky_tokens_sent_back(): void {
		$this->configure();
		$_COOKIE['samplit_vid'] = 'customer-42';
		Samplit_Test_WP::respond( 200, $this->answer( 'control' ) );
		$this->assertSame( 'control', samplit_variant( self::EXP ) );
		$this->assertSame( 'control', samplit_variant( self::EXP ) );
		$this->assertNull( samplit_variant( 'other-experiment' ), 'not on this page: known from the cached answer' );
		$this->assertCount( 1, Samplit_Test_WP::$requests );
		$key = 'samplit_v_' . md5( self::SITE_KEY . "\0customer-42" );
		$this->assertEqualsWithDelta( time() + 600, Samplit_Test_WP::$options[ '_transient_timeout_' . $key ]['value'], 2 );

		// Another visitor: its own call.
		$_COOKIE['samplit_vid'] = 'customer-43';
		Samplit_Test_WP::respond( 200, $this->answer( 'treatment' ) );
		$this->assertSame( 'treatment', samplit_variant( self::EXP ) );
		$this->assertCount( 2, Samplit_Test_WP::$requests );

		// The first visitor after the fresh copy expired: the sticky token goes back.
		$_COOKIE['samplit_vid'] = 'customer-42';
		delete_transient( $key );
		Samplit_Test_WP::respond( 200, $this->answer( 'control' ) );
		$this->assertSame( 'control', samplit_variant( self::EXP ) );
		parse_str( (string) parse_url( Samplit_Test_WP::$requests[2]['url'], PHP_URL_QUERY ), $q );
		$this->assertSame( self::EXP . '=control.va_mac', $q['sticky'] );
	}

	public function test_the_stale_copy_answers_when_the_edge_fails(): void {
		$this->configure();
		$_COOKIE['samplit_vid'] = 'customer-42';
		Samplit_Test_WP::respond( 200, $this->answer( 'treatment' ) );
		$this->assertSame( 'treatment', samplit_variant( self::EXP ) );
		delete_transient( 'samplit_v_' . md5( self::SITE_KEY . "\0customer-42" ) ); // 10 minutes later.
		Samplit_Test_WP::fail();
		$this->assertSame( 'treatment', samplit_variant( self::EXP ) );
		$this->assertCount( 2, Samplit_Test_WP::$requests );
		// The edge is marked down for a moment: no call, stale answer.
		$this->assertSame( 'treatment', samplit_variant( self::EXP ) );
		$this->assertCount( 2, Samplit_Test_WP::$requests );
		// Nothing cached for a new visitor while it is down: null.
		$_COOKIE['samplit_vid'] = 'customer-99';
		$this->assertNull( samplit_variant( self::EXP ) );
	}

	public function test_a_new_visitor_gets_a_random_id_in_the_cookie_for_a_year(): void {
		$this->configure();
		Samplit_Test_WP::respond( 200, $this->answer( 'control' ) );
		samplit_variant( self::EXP );
		$this->assertCount( 1, $this->cookies );
		[ $name, $value, $options ] = $this->cookies[0];
		$this->assertSame( 'samplit_vid', $name );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{32}$/', $value );
		$this->assertEqualsWithDelta( time() + 365 * 86400, $options['expires'], 2 );
		$this->assertSame( '/', $options['path'] );
		$this->assertSame( 'Lax', $options['samesite'] );
		parse_str( (string) parse_url( Samplit_Test_WP::$requests[0]['url'], PHP_URL_QUERY ), $q );
		$this->assertSame( $value, $q['visitor_id'] );
		// The same id for the rest of the request.
		$this->assertSame( $value, Samplit_Variant::visitor_id() );
		$this->assertCount( 1, $this->cookies );
	}

	public function test_an_invalid_cookie_is_replaced(): void {
		$_COOKIE['samplit_vid'] = 'a;b';
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{32}$/', Samplit_Variant::visitor_id() );
	}

	public function test_an_excluded_visitor_gets_null(): void {
		$this->configure();
		$_COOKIE['samplit_vid'] = 'customer-42';
		Samplit_Test_WP::respond( 200, array( 'site_key' => self::SITE_KEY, 'visitor_id' => null, 'excluded' => 'bot', 'assignments' => array(), 'goals' => array(), 'sticky' => array() ) );
		$this->assertNull( samplit_variant( self::EXP ) );
	}
}
