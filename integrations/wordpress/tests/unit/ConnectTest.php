<?php
/**
 * One-click connection: state, exchange, verification, disconnect, test, settings page.
 *
 * @package Samplit
 */

final class ConnectTest extends SamplitTestCase {

	private const EXCHANGE = array(
		'site_key'         => 'pk_live1',
		'server_secret'    => 'ss_SeCrEtSeCrEtSeCrEt_0123456789abcdefABCDEF',
		'edge_url'         => 'https://edge.example.net/',
		'connection_token' => 'wpc_TokenTokenToken0123456789',
		'site_id'          => '11111111-1111-4111-8111-111111111111',
		'host'             => 'shop.example.com',
		'verification'     => array(
			'token' => 'svt_verify0123456789',
			'path'  => '/.well-known/samplit-verification.txt',
		),
	);

	protected function setUp(): void {
		parent::setUp();
		update_option( Samplit_Options::CONTROL_PLANE_URL, self::CP );
		Samplit_Admin::register_settings();
		Samplit_Admin::register();
		Samplit_Test_WP::$caps['manage_options'] = true;
		Samplit_Test_WP::$user_id               = 7;
	}

	/** Runs a handler that must redirect; answers the location. */
	private function redirect_of( callable $fn ): string {
		try {
			$fn();
		} catch ( Samplit_Test_Redirect $r ) {
			return $r->location;
		}
		$this->fail( 'no redirect' );
	}

	private function start(): string {
		$_POST['action']      = 'samplit_connect';
		$_REQUEST['_wpnonce'] = 'nonce-samplit_connect';
		$location             = $this->redirect_of( static fn () => do_action( 'admin_post_samplit_connect' ) );
		parse_str( (string) parse_url( $location, PHP_URL_QUERY ), $q );
		return $q['state'];
	}

	private function come_back( string $code, string $state ): string {
		$_GET = array(
			'page'  => 'samplit',
			'code'  => $code,
			'state' => $state,
		);
		return $this->redirect_of( array( Samplit_Admin::class, 'load_page' ) );
	}

	public function test_connect_stores_a_user_scoped_state_and_redirects_to_the_console(): void {
		$_REQUEST['_wpnonce'] = 'nonce-samplit_connect';
		$location             = $this->redirect_of( array( Samplit_Admin::class, 'handle_connect' ) );
		$state                = get_transient( 'samplit_state_7' );
		$this->assertIsString( $state );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{32,}$/', $state );
		$this->assertEqualsWithDelta( time() + 600, Samplit_Test_WP::$options['_transient_timeout_samplit_state_7']['value'], 2 );
		$this->assertSame(
			self::CP . '/app/connect/wordpress?site_url=' . rawurlencode( 'https://shop.example.com' )
				. '&return_url=' . rawurlencode( 'https://shop.example.com/wp-admin/options-general.php?page=samplit' )
				. '&state=' . $state,
			$location
		);
		$this->assertSame( array(), Samplit_Test_WP::$requests );
	}

	public function test_every_action_needs_the_capability_and_its_nonce(): void {
		foreach ( Samplit_Admin::ACTIONS as $action ) {
			$handler              = array( Samplit_Admin::class, 'handle_' . substr( $action, 8 ) );
			Samplit_Test_WP::$caps = array();
			$_REQUEST['_wpnonce'] = 'nonce-' . $action;
			try {
				$handler();
				$this->fail( "$action without manage_options" );
			} catch ( Samplit_Test_Die $e ) {
				$this->addToAssertionCount( 1 );
			}
			Samplit_Test_WP::$caps['manage_options'] = true;
			$_REQUEST['_wpnonce']                   = 'nonce-samplit_other';
			try {
				$handler();
				$this->fail( "$action with a wrong nonce" );
			} catch ( Samplit_Test_Die $e ) {
				$this->addToAssertionCount( 1 );
			}
		}
		$this->assertSame( array(), Samplit_Test_WP::$requests );
		$this->assertFalse( get_transient( 'samplit_state_7' ) );
	}

	public function test_a_wrong_state_is_refused_and_nothing_is_exchanged(): void {
		$state = $this->start();
		$this->come_back( 'code-1', str_repeat( 'a', 64 ) );
		$this->assertSame( array(), Samplit_Test_WP::$requests, 'exchange never called' );
		$this->assertSame( '', Samplit_Options::site_key() );
		$this->assertSame( 'error', Samplit_Admin::take_notices()[0][0] );
		$this->assertSame( $state, get_transient( 'samplit_state_7' ), 'the genuine attempt is still pending' );
	}

	public function test_another_users_state_is_refused(): void {
		$state                    = $this->start();
		Samplit_Test_WP::$user_id = 8;
		$this->come_back( 'code-1', $state );
		$this->assertSame( array(), Samplit_Test_WP::$requests );
	}

	public function test_the_state_is_one_time_and_the_exchange_stores_secrets_not_autoloaded(): void {
		$state = $this->start();
		Samplit_Test_WP::respond( 200, self::EXCHANGE );
		Samplit_Test_WP::respond( 200, array( 'host' => 'shop.example.com', 'status' => 'verified' ) );
		$location = $this->come_back( 'code-1', $state );
		$this->assertSame( 'https://shop.example.com/wp-admin/options-general.php?page=samplit', $location, 'back to the clean page' );

		$this->assertCount( 2, Samplit_Test_WP::$requests );
		[ $exchange, $verify ] = Samplit_Test_WP::$requests;
		$this->assertSame( 'POST', $exchange['method'] );
		$this->assertSame( self::CP . '/api/v1/wordpress/exchange', $exchange['url'] );
		$this->assertSame( array( 'code' => 'code-1', 'site_url' => 'https://shop.example.com' ), json_decode( $exchange['args']['body'], true ) );
		$this->assertSame( 'application/json', $this->header( $exchange, 'Content-Type' ) );
		$this->assertSame( self::CP . '/api/v1/wordpress/verify', $verify['url'] );
		$this->assertSame( 'POST', $verify['method'] );
		$this->assertSame( 'Bearer wpc_TokenTokenToken0123456789', $this->header( $verify, 'Authorization' ) );

		$this->assertSame( 'pk_live1', get_option( 'samplit_site_key' ) );
		$this->assertSame( 'https://edge.example.net', Samplit_Options::edge_url() );
		$this->assertSame( self::EXCHANGE['server_secret'], get_option( 'samplit_server_secret' ) );
		$this->assertSame( 'no', Samplit_Test_WP::autoload( 'samplit_server_secret' ) );
		$this->assertSame( self::EXCHANGE['connection_token'], get_option( 'samplit_connection_token' ) );
		$this->assertSame( 'no', Samplit_Test_WP::autoload( 'samplit_connection_token' ) );
		$this->assertSame( 'svt_verify0123456789', get_option( 'samplit_verification_token' ) );
		$this->assertSame( 'verified', Samplit_Options::connection_info()['domain_status'] );
		$notices = Samplit_Admin::take_notices();
		$this->assertSame( array( 'success', 'success' ), array_column( $notices, 0 ) );
		$this->assertFalse( get_transient( 'samplit_state_7' ), 'state deleted' );

		// Replayed: refused, no second exchange.
		$this->come_back( 'code-1', $state );
		$this->assertCount( 2, Samplit_Test_WP::$requests );
		$this->assertSame( 'error', Samplit_Admin::take_notices()[0][0] );
	}

	public function test_an_existing_autoloaded_secret_becomes_not_autoloaded(): void {
		add_option( 'samplit_server_secret', 'ss_oldoldoldold', '', 'yes' );
		Samplit_Connect::store_exchange( self::EXCHANGE );
		$this->assertSame( 'no', Samplit_Test_WP::autoload( 'samplit_server_secret' ) );
	}

	public function test_a_problem_is_shown_with_its_detail(): void {
		$state = $this->start();
		Samplit_Test_WP::respond( 400, array( 'status' => 400, 'code' => 'invalid_code', 'detail' => 'The code was already used.' ) );
		$this->come_back( 'code-1', $state );
		$notices = Samplit_Admin::take_notices();
		$this->assertSame( 'error', $notices[0][0] );
		$this->assertStringContainsString( 'The code was already used.', $notices[0][1] );
		$this->assertSame( '', Samplit_Options::server_secret() );
	}

	public function test_incomplete_exchange_data_stores_nothing(): void {
		$state = $this->start();
		$data  = self::EXCHANGE;
		unset( $data['server_secret'] );
		Samplit_Test_WP::respond( 200, $data );
		$this->come_back( 'code-1', $state );
		$this->assertSame( 'error', Samplit_Admin::take_notices()[0][0] );
		$this->assertSame( array(), array_filter( array_keys( Samplit_Test_WP::$options ), static fn ( $k ) => in_array( $k, Samplit_Options::connection(), true ) ) );
	}

	public function test_a_failed_verification_says_what_the_control_plane_found_and_can_be_retried(): void {
		Samplit_Connect::store_exchange( self::EXCHANGE );
		Samplit_Test_WP::respond( 422, array( 'status' => 422, 'code' => 'verification_failed', 'detail' => 'https://shop.example.com/.well-known/samplit-verification.txt answered 404' ) );
		$_REQUEST['_wpnonce'] = 'nonce-samplit_verify';
		$this->redirect_of( array( Samplit_Admin::class, 'handle_verify' ) );
		$notice = Samplit_Admin::take_notices()[0];
		$this->assertSame( 'warning', $notice[0] );
		$this->assertStringContainsString( 'answered 404', $notice[1] );
		$this->assertSame( 'unverified', Samplit_Options::connection_info()['domain_status'] );

		Samplit_Test_WP::respond( 200, array( 'host' => 'shop.example.com', 'status' => 'verified' ) );
		$this->redirect_of( array( Samplit_Admin::class, 'handle_verify' ) );
		$this->assertSame( 'success', Samplit_Admin::take_notices()[0][0] );
		$this->assertSame( 'verified', Samplit_Options::connection_info()['domain_status'] );
	}

	public function test_disconnect_deletes_the_local_connection_even_when_the_control_plane_fails(): void {
		Samplit_Connect::store_exchange( self::EXCHANGE );
		update_option( Samplit_Options::SKIP_ADMINS, true );
		Samplit_Test_WP::fail();
		$_REQUEST['_wpnonce'] = 'nonce-samplit_disconnect';
		$this->redirect_of( array( Samplit_Admin::class, 'handle_disconnect' ) );
		$req = Samplit_Test_WP::$requests[0];
		$this->assertSame( self::CP . '/api/v1/wordpress/disconnect', $req['url'] );
		$this->assertSame( 'Bearer wpc_TokenTokenToken0123456789', $this->header( $req, 'Authorization' ) );
		foreach ( Samplit_Options::connection() as $name ) {
			$this->assertArrayNotHasKey( $name, Samplit_Test_WP::$options, $name );
		}
		$this->assertSame( self::CP, get_option( Samplit_Options::CONTROL_PLANE_URL ), 'the console URL stays' );
		$this->assertSame( array( 'warning', 'success' ), array_column( Samplit_Admin::take_notices(), 0 ) );
	}

	public function test_disconnect_answered_204(): void {
		Samplit_Connect::store_exchange( self::EXCHANGE );
		Samplit_Test_WP::respond( 204 );
		$this->assertSame( array( 'success' ), array_column( Samplit_Connect::disconnect(), 0 ) );
	}

	public function test_test_connection_lists_experiments_and_checks_the_edge_snippet(): void {
		Samplit_Connect::store_exchange( self::EXCHANGE );
		Samplit_Test_WP::respond(
			200,
			array(
				'site'          => array( 'id' => 's1', 'name' => 'Shop <b>', 'site_key' => 'pk_live1' ),
				'host'          => 'shop.example.com',
				'domain_status' => 'verified',
				'experiments'   => array( array( 'id' => 'e1', 'name' => 'Hero <script>', 'status' => 'running' ) ),
			)
		);
		Samplit_Test_WP::respond( 200, '/* samplit */' );
		$_REQUEST['_wpnonce'] = 'nonce-samplit_test';
		$this->redirect_of( array( Samplit_Admin::class, 'handle_test' ) );
		[ $conn, $js ] = Samplit_Test_WP::$requests;
		$this->assertSame( 'GET', $conn['method'] );
		$this->assertSame( self::CP . '/api/v1/wordpress/connection', $conn['url'] );
		$this->assertSame( 'Bearer wpc_TokenTokenToken0123456789', $this->header( $conn, 'Authorization' ) );
		$this->assertSame( 'https://edge.example.net/v1/samplit.js?site=pk_live1', $js['url'] );

		$page = $this->capture( array( Samplit_Admin::class, 'render_page' ) );
		$this->assertStringContainsString( '<li>Hero &lt;script&gt; — running (id e1)</li>', $page );
		$this->assertStringContainsString( 'Shop &lt;b&gt;', $page );
		$this->assertStringContainsString( 'answered 200', $page );
	}

	public function test_the_settings_page_never_prints_the_secret_or_the_token(): void {
		Samplit_Connect::store_exchange( self::EXCHANGE );
		$page = $this->capture( array( Samplit_Admin::class, 'render_page' ) );
		$this->assertStringNotContainsString( self::EXCHANGE['server_secret'], $page );
		$this->assertStringNotContainsString( self::EXCHANGE['connection_token'], $page );
		$this->assertStringContainsString( '<th scope="row">Server secret</th><td>set</td>', $page );
		$this->assertStringContainsString( '<th scope="row">Connection token</th><td>set</td>', $page );
		$this->assertStringContainsString( 'name="samplit_server_secret" value=""', $page );
		foreach ( array( 'samplit_connect', 'samplit_verify', 'samplit_test', 'samplit_disconnect' ) as $action ) {
			$this->assertStringContainsString( 'value="' . $action . '" /><input type="hidden" name="_wpnonce" value="nonce-' . $action . '"', $page );
		}
		delete_option( 'samplit_server_secret' );
		$this->assertStringContainsString( '<th scope="row">Server secret</th><td>not set</td>', $this->capture( array( Samplit_Admin::class, 'render_page' ) ) );
	}

	public function test_manual_entry_keeps_the_secret_when_left_empty_and_never_autoloads_it(): void {
		// options.php: update_option() of every registered setting with the posted values.
		update_option( 'samplit_site_key', 'pk_manual' );
		update_option( 'samplit_edge_url', 'https://edge.example.org/' );
		update_option( 'samplit_server_secret', '' );
		$this->assertSame( 'no', Samplit_Test_WP::autoload( 'samplit_server_secret' ), 'an empty first save creates it not autoloaded' );
		update_option( 'samplit_server_secret', 'ss_manualmanualmanual' );
		$this->assertSame( 'ss_manualmanualmanual', Samplit_Options::server_secret() );
		update_option( 'samplit_server_secret', '' );
		$this->assertSame( 'ss_manualmanualmanual', Samplit_Options::server_secret(), 'empty keeps it' );
		$this->assertSame( 'no', Samplit_Test_WP::autoload( 'samplit_server_secret' ) );
		update_option( 'samplit_site_key', 'bad key"' );
		$this->assertSame( 'pk_manual', Samplit_Options::site_key(), 'an invalid key keeps the old one' );
		$this->assertNotEmpty( Samplit_Test_WP::$settings_errors );
		$this->assertSame( 'https://edge.example.org', Samplit_Options::edge_url() );
	}

	public function test_the_console_host_is_an_allowed_redirect_host(): void {
		$this->assertContains( 'app.samplit.example', apply_filters( 'allowed_redirect_hosts', array() ) );
	}
}
