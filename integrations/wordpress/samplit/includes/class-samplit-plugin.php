<?php
/**
 * Wires the plugin's parts to WordPress.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Bootstrap.
 */
final class Samplit_Plugin {

	/** Whether boot() ran. */
	private static bool $booted = false;

	/** Registers every hook (once). */
	public static function boot(): void {
		if ( self::$booted ) {
			return;
		}
		self::$booted = true;
		Samplit_Verification::register();
		Samplit_Snippet::register();
		Samplit_WooCommerce::register();
		if ( is_admin() ) {
			Samplit_Admin::register();
		}
	}

	/** Activation: the options exist with the right autoload (secrets never autoloaded). */
	public static function activate(): void {
		add_option( Samplit_Options::SKIP_ADMINS, false );
		foreach ( array( Samplit_Options::SERVER_SECRET, Samplit_Options::CONNECTION_TOKEN ) as $secret ) {
			if ( false === get_option( $secret, false ) ) {
				add_option( $secret, '', '', 'no' );
			}
		}
	}
}
