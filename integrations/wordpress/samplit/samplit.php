<?php
/**
 * Plugin Name:       Samplit
 * Plugin URI:        https://github.com/samplit/samplit
 * Description:       A/B testing with Samplit: connects in one click, installs the Samplit snippet early in the page head and counts WooCommerce orders as conversions.
 * Version:           1.0.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * Author:            Samplit
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       samplit
 * WC requires at least: 7.1
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

define( 'SAMPLIT_VERSION', '1.0.0' );
define( 'SAMPLIT_PLUGIN_FILE', __FILE__ );
define( 'SAMPLIT_PLUGIN_DIR', __DIR__ );

require_once __DIR__ . '/includes/class-samplit-options.php';
require_once __DIR__ . '/includes/class-samplit-signer.php';
require_once __DIR__ . '/includes/class-samplit-http.php';
require_once __DIR__ . '/includes/class-samplit-control-plane.php';
require_once __DIR__ . '/includes/class-samplit-edge.php';
require_once __DIR__ . '/includes/class-samplit-snippet.php';
require_once __DIR__ . '/includes/class-samplit-verification.php';
require_once __DIR__ . '/includes/class-samplit-variant.php';
require_once __DIR__ . '/includes/class-samplit-connect.php';
require_once __DIR__ . '/includes/class-samplit-admin.php';
require_once __DIR__ . '/includes/class-samplit-woocommerce.php';
require_once __DIR__ . '/includes/class-samplit-uninstaller.php';
require_once __DIR__ . '/includes/class-samplit-plugin.php';
require_once __DIR__ . '/includes/functions.php';

register_activation_hook( __FILE__, array( 'Samplit_Plugin', 'activate' ) );

Samplit_Plugin::boot();
