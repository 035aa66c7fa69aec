<?php
/**
 * Uninstall: removes every option, transient and scheduled event of the plugin.
 *
 * @package Samplit
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

require_once __DIR__ . '/includes/class-samplit-options.php';
require_once __DIR__ . '/includes/class-samplit-variant.php';
require_once __DIR__ . '/includes/class-samplit-woocommerce.php';
require_once __DIR__ . '/includes/class-samplit-uninstaller.php';

Samplit_Uninstaller::run();
