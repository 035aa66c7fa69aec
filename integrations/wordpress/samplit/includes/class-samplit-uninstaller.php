<?php
/**
 * Removes everything the plugin stored (called from uninstall.php).
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Options, transients and scheduled events. Order meta (_samplit_*) is order history and
 * stays with the orders.
 */
final class Samplit_Uninstaller {

	/** Removes the plugin's data from every site (multisite) or from this one. */
	public static function run(): void {
		if ( function_exists( 'is_multisite' ) && is_multisite() && function_exists( 'get_sites' ) ) {
			foreach ( get_sites(
				array(
					'fields' => 'ids',
					'number' => 0,
				)
			) as $blog_id ) {
				switch_to_blog( (int) $blog_id );
				self::run_site();
				restore_current_blog();
			}
			return;
		}
		self::run_site();
	}

	/** Removes the plugin's data from the current site. */
	public static function run_site(): void {
		global $wpdb;
		foreach ( Samplit_Options::all() as $name ) {
			delete_option( $name );
		}
		delete_transient( Samplit_Variant::DOWN_TRANSIENT );
		// Per-user (state, notices, test results) and per-visitor (assignments) transients:
		// their names are in the options table. With a persistent object cache they are not,
		// and expire by themselves (at most a day).
		if ( isset( $wpdb ) && is_object( $wpdb ) ) {
			$like = $wpdb->esc_like( '_transient_' . Samplit_Options::TRANSIENT_PREFIX ) . '%';
			// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- uninstall: find our transients by prefix.
			$names = $wpdb->get_col( $wpdb->prepare( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE %s", $like ) );
			foreach ( (array) $names as $name ) {
				delete_transient( substr( (string) $name, strlen( '_transient_' ) ) );
			}
		}
		wp_unschedule_hook( Samplit_WooCommerce::RETRY_HOOK );
	}
}
