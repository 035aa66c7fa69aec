<?php
/**
 * uninstall.php removes every option, transient and scheduled event of the plugin.
 *
 * @package Samplit
 */

final class UninstallTest extends SamplitTestCase {

	public function test_uninstall_removes_everything(): void {
		$this->configure();
		Samplit_Connect::store_exchange(
			array(
				'site_key'         => 'pk_live1',
				'server_secret'    => 'ss_SeCrEtSeCrEtSeCrEt_0123',
				'edge_url'         => 'https://edge.example.net',
				'connection_token' => 'wpc_TokenTokenToken0123',
				'site_id'          => 's1',
				'host'             => 'shop.example.com',
				'verification'     => array( 'token' => 'svt_verify0123456789' ),
			)
		);
		update_option( Samplit_Options::SKIP_ADMINS, true );
		Samplit_Test_WP::$user_id = 3;
		Samplit_Connect::start();
		Samplit_Admin::add_notices( array( array( 'info', 'x' ) ) );
		set_transient( 'samplit_test_3', array(), 300 );
		set_transient( 'samplit_v_' . md5( 'a' ), array(), 600 );
		set_transient( 'samplit_vs_' . md5( 'a' ), array(), 86400 );
		set_transient( 'samplit_edge_down', 1, 30 );
		wp_schedule_single_event( time() + 60, 'samplit_retry_order', array( 1 ) );
		wp_schedule_single_event( time() + 300, 'samplit_retry_order', array( 2 ) );
		// Someone else's data stays.
		update_option( 'blogname', 'Shop' );
		set_transient( 'other_plugin', 1, 60 );
		wp_schedule_single_event( time() + 60, 'other_hook', array() );

		define( 'WP_UNINSTALL_PLUGIN', 'samplit/samplit.php' );
		require SAMPLIT_TEST_PLUGIN_DIR . '/uninstall.php';

		$left = array_values( array_filter( array_keys( Samplit_Test_WP::$options ), static fn ( $n ) => str_contains( $n, 'samplit' ) ) );
		$this->assertSame( array(), $left );
		$this->assertSame( array( 'other_hook' ), array_column( Samplit_Test_WP::$cron, 'hook' ) );
		$this->assertSame( 'Shop', get_option( 'blogname' ) );
		$this->assertSame( 1, get_transient( 'other_plugin' ) );
		foreach ( Samplit_Options::all() as $name ) {
			$this->assertFalse( get_option( $name ), $name );
		}
	}
}
