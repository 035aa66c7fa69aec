<?php
/**
 * Minimal stand-ins for the WordPress (and WooCommerce) functions the plugin calls, for
 * unit tests without a running WordPress. State lives in Samplit_Test_WP and is reset
 * before each test. The real-WordPress run is the end-to-end test's job.
 *
 * @package Samplit
 */

// phpcs:disable

error_reporting( E_ALL );
set_error_handler(
	static function ( int $no, string $msg, string $file, int $line ): bool {
		throw new ErrorException( $msg, 0, $no, $file, $line ); // Any warning or notice fails the test.
	}
);

define( 'ABSPATH', __DIR__ . '/' );
define( 'SAMPLIT_TEST_PLUGIN_DIR', dirname( __DIR__, 2 ) . '/samplit' );

/** Thrown by wp_redirect()/wp_safe_redirect() instead of redirecting. */
final class Samplit_Test_Redirect extends RuntimeException {
	public function __construct( public readonly string $location ) {
		parent::__construct( 'redirect to ' . $location );
	}
}

/** Thrown by wp_die(). */
final class Samplit_Test_Die extends RuntimeException {}

/** The stubbed WordPress state. */
final class Samplit_Test_WP {
	/** @var array<string, array{value: mixed, autoload: string}> */
	public static array $options = array();
	/** @var array<string, array<int, array<int, array{0: callable, 1: int}>>> */
	public static array $hooks = array();
	/** @var array<int, array{method: string, url: string, args: array}> */
	public static array $requests = array();
	/** @var array<int, mixed> */
	public static array $responses = array();
	/** @var array<int, array{timestamp: int, hook: string, args: array}> */
	public static array $cron = array();
	/** @var array<string, bool> */
	public static array $caps = array();
	public static int $user_id = 1;
	public static bool $is_admin = false;
	public static bool $ssl = true;
	public static string $home = 'https://shop.example.com';
	/** @var array<int, array{0: string, 1: string, 2: string}> */
	public static array $settings_errors = array();
	/** @var array<int, array> */
	public static array $activation = array();
	/** @var array<int, array{id: int, meta: array<string, mixed>, total: string, currency: string}> */
	public static array $orders = array();

	public static function reset(): void {
		self::$options         = array();
		self::$requests        = array();
		self::$responses       = array();
		self::$cron            = array();
		self::$caps            = array();
		self::$user_id         = 1;
		self::$is_admin        = false;
		self::$ssl             = true;
		self::$settings_errors = array();
		self::$orders          = array();
		foreach ( array_keys( self::$hooks ) as $hook ) {
			if ( str_starts_with( $hook, 'sanitize_option_' ) || str_starts_with( $hook, 'admin_' ) || str_starts_with( $hook, 'plugin_action_links_' ) || 'allowed_redirect_hosts' === $hook || str_starts_with( $hook, 'samplit_' ) && ! in_array( $hook, array( 'samplit_retry_order' ), true ) ) {
				unset( self::$hooks[ $hook ] );
			}
		}
		$_COOKIE               = array();
		$_GET                  = array();
		$_POST                 = array();
		$_REQUEST              = array();
		unset( $_SERVER['REQUEST_URI'], $_SERVER['HTTP_USER_AGENT'], $_SERVER['REMOTE_ADDR'] );
	}

	/** Queues an HTTP answer. */
	public static function respond( int $status, $body = '', array $headers = array() ): void {
		self::$responses[] = array(
			'headers'  => $headers,
			'body'     => is_string( $body ) ? $body : json_encode( $body ),
			'response' => array(
				'code'    => $status,
				'message' => '',
			),
		);
	}

	/** Queues a transport failure. */
	public static function fail( string $message = 'cURL error 28: Operation timed out' ): void {
		self::$responses[] = new WP_Error( 'http_request_failed', $message );
	}

	public static function autoload( string $name ): ?string {
		return self::$options[ $name ]['autoload'] ?? null;
	}
}

class WP_Error {
	public function __construct( public string $code = '', public string $message = '' ) {}
	public function get_error_message(): string {
		return $this->message;
	}
	public function get_error_code(): string {
		return $this->code;
	}
}

/** A $wpdb that answers the one query the uninstaller makes, over the stubbed options. */
final class Samplit_Test_WPDB {
	public string $options = 'wp_options';
	public function esc_like( string $text ): string {
		return addcslashes( $text, '_%\\' );
	}
	public function prepare( string $query, ...$args ): string {
		$args = array_map( static fn ( $a ) => "'" . addslashes( (string) $a ) . "'", $args );
		return vsprintf( str_replace( '%s', '%s', $query ), $args );
	}
	public function get_col( string $query ): array {
		if ( ! preg_match( "/LIKE '((?:[^'\\\\]|\\\\.)*)'/", $query, $m ) ) {
			throw new LogicException( 'unexpected query: ' . $query );
		}
		$like  = stripslashes( $m[1] );
		$regex = '';
		$len   = strlen( $like );
		for ( $i = 0; $i < $len; $i++ ) {
			$c = $like[ $i ];
			if ( '\\' === $c && $i + 1 < $len ) {
				$regex .= preg_quote( $like[ ++$i ], '/' );
			} elseif ( '%' === $c ) {
				$regex .= '.*';
			} elseif ( '_' === $c ) {
				$regex .= '.';
			} else {
				$regex .= preg_quote( $c, '/' );
			}
		}
		return array_values( array_filter( array_keys( Samplit_Test_WP::$options ), static fn ( $n ) => 1 === preg_match( '/^' . $regex . '$/s', $n ) ) );
	}
}
$GLOBALS['wpdb'] = new Samplit_Test_WPDB();

// -- hooks ---------------------------------------------------------------------------
function add_filter( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	Samplit_Test_WP::$hooks[ $hook ][ $priority ][] = array( $callback, $accepted_args );
	return true;
}
function add_action( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	return add_filter( $hook, $callback, $priority, $accepted_args );
}
function has_action( $hook, $callback = false ) {
	foreach ( Samplit_Test_WP::$hooks[ $hook ] ?? array() as $priority => $list ) {
		foreach ( $list as $entry ) {
			if ( $entry[0] === $callback ) {
				return $priority;
			}
		}
	}
	return false;
}
function apply_filters( $hook, $value, ...$args ) {
	$by_priority = Samplit_Test_WP::$hooks[ $hook ] ?? array();
	ksort( $by_priority );
	foreach ( $by_priority as $list ) {
		foreach ( $list as $entry ) {
			$value = call_user_func_array( $entry[0], array_slice( array_merge( array( $value ), $args ), 0, $entry[1] ) );
		}
	}
	return $value;
}
function do_action( $hook, ...$args ) {
	$by_priority = Samplit_Test_WP::$hooks[ $hook ] ?? array();
	ksort( $by_priority );
	foreach ( $by_priority as $list ) {
		foreach ( $list as $entry ) {
			call_user_func_array( $entry[0], array_slice( $args, 0, $entry[1] ) );
		}
	}
}
function register_activation_hook( $file, $callback ) {
	Samplit_Test_WP::$activation[] = $callback;
}

// -- options and transients (as WordPress stores them without an object cache) ------
function sanitize_option( $option, $value ) {
	return apply_filters( "sanitize_option_{$option}", $value, $option, $value );
}
function get_option( $option, $default = false ) {
	return array_key_exists( $option, Samplit_Test_WP::$options ) ? Samplit_Test_WP::$options[ $option ]['value'] : $default;
}
function add_option( $option, $value = '', $deprecated = '', $autoload = 'yes' ) {
	$value = sanitize_option( $option, $value );
	if ( array_key_exists( $option, Samplit_Test_WP::$options ) ) {
		return false;
	}
	Samplit_Test_WP::$options[ $option ] = array(
		'value'    => $value,
		'autoload' => ( 'no' === $autoload || false === $autoload ) ? 'no' : 'yes',
	);
	return true;
}
function update_option( $option, $value, $autoload = null ) {
	$value = sanitize_option( $option, $value );
	if ( ! array_key_exists( $option, Samplit_Test_WP::$options ) ) {
		return add_option( $option, $value, '', null === $autoload ? 'yes' : $autoload );
	}
	if ( Samplit_Test_WP::$options[ $option ]['value'] === $value ) {
		return false;
	}
	Samplit_Test_WP::$options[ $option ]['value'] = $value;
	if ( null !== $autoload ) {
		Samplit_Test_WP::$options[ $option ]['autoload'] = ( 'no' === $autoload || false === $autoload ) ? 'no' : 'yes';
	}
	return true;
}
function delete_option( $option ) {
	$had = array_key_exists( $option, Samplit_Test_WP::$options );
	unset( Samplit_Test_WP::$options[ $option ] );
	return $had;
}
function set_transient( $transient, $value, $expiration = 0 ) {
	Samplit_Test_WP::$options[ '_transient_' . $transient ] = array( 'value' => $value, 'autoload' => $expiration ? 'no' : 'yes' );
	if ( $expiration ) {
		Samplit_Test_WP::$options[ '_transient_timeout_' . $transient ] = array( 'value' => time() + (int) $expiration, 'autoload' => 'no' );
	}
	return true;
}
function get_transient( $transient ) {
	$timeout = Samplit_Test_WP::$options[ '_transient_timeout_' . $transient ]['value'] ?? null;
	if ( null !== $timeout && $timeout < time() ) {
		delete_transient( $transient );
		return false;
	}
	return Samplit_Test_WP::$options[ '_transient_' . $transient ]['value'] ?? false;
}
function delete_transient( $transient ) {
	$had = isset( Samplit_Test_WP::$options[ '_transient_' . $transient ] );
	unset( Samplit_Test_WP::$options[ '_transient_' . $transient ], Samplit_Test_WP::$options[ '_transient_timeout_' . $transient ] );
	return $had;
}

// -- HTTP ------------------------------------------------------------------------------
function samplit_test_http( string $method, string $url, array $args ) {
	Samplit_Test_WP::$requests[] = array( 'method' => $method, 'url' => $url, 'args' => $args );
	if ( ! Samplit_Test_WP::$responses ) {
		return new WP_Error( 'http_request_failed', 'no queued response (unexpected request to ' . $url . ')' );
	}
	return array_shift( Samplit_Test_WP::$responses );
}
function wp_remote_get( $url, $args = array() ) {
	return samplit_test_http( 'GET', $url, $args );
}
function wp_remote_post( $url, $args = array() ) {
	return samplit_test_http( 'POST', $url, $args );
}
function is_wp_error( $thing ) {
	return $thing instanceof WP_Error;
}
function wp_remote_retrieve_response_code( $response ) {
	return is_array( $response ) ? $response['response']['code'] : '';
}
function wp_remote_retrieve_body( $response ) {
	return is_array( $response ) ? $response['body'] : '';
}
function wp_json_encode( $data, $options = 0, $depth = 512 ) {
	return json_encode( $data, $options, $depth );
}

// -- cron -------------------------------------------------------------------------------
function wp_schedule_single_event( $timestamp, $hook, $args = array(), $wp_error = false ) {
	Samplit_Test_WP::$cron[] = array( 'timestamp' => (int) $timestamp, 'hook' => $hook, 'args' => $args );
	return true;
}
function wp_next_scheduled( $hook, $args = array() ) {
	foreach ( Samplit_Test_WP::$cron as $event ) {
		if ( $event['hook'] === $hook && $event['args'] === $args ) {
			return $event['timestamp'];
		}
	}
	return false;
}
function wp_unschedule_hook( $hook, $wp_error = false ) {
	$before                 = count( Samplit_Test_WP::$cron );
	Samplit_Test_WP::$cron = array_values( array_filter( Samplit_Test_WP::$cron, static fn ( $e ) => $e['hook'] !== $hook ) );
	return $before - count( Samplit_Test_WP::$cron );
}
/** Runs the due... every scheduled event of a hook, as WP-Cron does (unscheduled first). */
function samplit_test_run_cron( string $hook ): int {
	$due                    = array_values( array_filter( Samplit_Test_WP::$cron, static fn ( $e ) => $e['hook'] === $hook ) );
	Samplit_Test_WP::$cron = array_values( array_filter( Samplit_Test_WP::$cron, static fn ( $e ) => $e['hook'] !== $hook ) );
	foreach ( $due as $event ) {
		do_action( $hook, ...$event['args'] );
	}
	return count( $due );
}

// -- users, URLs, requests ----------------------------------------------------------------
function current_user_can( $capability, ...$args ) {
	return ! empty( Samplit_Test_WP::$caps[ $capability ] );
}
function get_current_user_id() {
	return Samplit_Test_WP::$user_id;
}
function is_admin() {
	return Samplit_Test_WP::$is_admin;
}
function is_ssl() {
	return Samplit_Test_WP::$ssl;
}
function is_multisite() {
	return false;
}
function home_url( $path = '', $scheme = null ) {
	return Samplit_Test_WP::$home . ( $path ? '/' . ltrim( $path, '/' ) : '' );
}
function admin_url( $path = '', $scheme = 'admin' ) {
	return Samplit_Test_WP::$home . '/wp-admin/' . ltrim( $path, '/' );
}
function plugin_basename( $file ) {
	return 'samplit/' . basename( $file );
}
function wp_parse_url( $url, $component = -1 ) {
	return parse_url( $url, $component );
}
function wp_unslash( $value ) {
	return is_string( $value ) ? stripslashes( $value ) : $value;
}
function wp_redirect( $location, $status = 302, $x_redirect_by = 'WordPress' ) {
	throw new Samplit_Test_Redirect( $location );
}
function wp_safe_redirect( $location, $status = 302, $x_redirect_by = 'WordPress' ) {
	$host    = parse_url( $location, PHP_URL_HOST );
	$allowed = apply_filters( 'allowed_redirect_hosts', array( parse_url( Samplit_Test_WP::$home, PHP_URL_HOST ) ), $host );
	if ( ! in_array( $host, $allowed, true ) ) {
		$location = admin_url();
	}
	throw new Samplit_Test_Redirect( $location );
}
function wp_die( $message = '', $title = '', $args = array() ) {
	throw new Samplit_Test_Die( is_string( $message ) ? $message : 'wp_die' );
}
function check_admin_referer( $action = -1, $query_arg = '_wpnonce' ) {
	if ( ( $_REQUEST[ $query_arg ] ?? '' ) !== 'nonce-' . $action ) {
		wp_die( 'The link you followed has expired.', 403 );
	}
	return 1;
}
function wp_nonce_field( $action = -1, $name = '_wpnonce', $referer = true, $echo = true ) {
	$field = '<input type="hidden" name="' . esc_attr( $name ) . '" value="nonce-' . esc_attr( $action ) . '" />';
	if ( $echo ) {
		echo $field;
	}
	return $field;
}
function status_header( $code, $description = '' ) {}

// -- i18n and escaping -----------------------------------------------------------------
function __( $text, $domain = 'default' ) {
	return $text;
}
function esc_html__( $text, $domain = 'default' ) {
	return esc_html( $text );
}
function esc_attr__( $text, $domain = 'default' ) {
	return esc_attr( $text );
}
function esc_html( $text ) {
	return htmlspecialchars( (string) $text, ENT_QUOTES, 'UTF-8' );
}
function esc_attr( $text ) {
	return htmlspecialchars( (string) $text, ENT_QUOTES, 'UTF-8' );
}
function esc_url( $url, $protocols = null, $_context = 'display' ) {
	$url = preg_replace( '|[^a-z0-9-~+_.?#=!&;,/:%@$\|*\'()\[\]\x80-\xff]|i', '', (string) $url );
	if ( '' === $url || ! preg_match( '#^https?://#i', $url ) ) {
		return '';
	}
	return str_replace( array( '&', "'" ), array( '&#038;', '&#039;' ), $url );
}
function esc_url_raw( $url, $protocols = null ) {
	$url = preg_replace( '|[^a-z0-9-~+_.?#=!&;,/:%@$\|*\'()\[\]\x80-\xff]|i', '', (string) $url );
	return preg_match( '#^https?://#i', $url ) ? $url : '';
}
function sanitize_text_field( $str ) {
	return trim( preg_replace( '/[\r\n\t ]+/', ' ', strip_tags( (string) $str ) ) );
}
function checked( $checked, $current = true, $echo = true ) {
	$out = (string) $checked === (string) $current ? " checked='checked'" : '';
	if ( $echo ) {
		echo $out;
	}
	return $out;
}

// -- Settings API ------------------------------------------------------------------------
function register_setting( $group, $name, $args = array() ) {
	if ( isset( $args['sanitize_callback'] ) ) {
		add_filter( "sanitize_option_{$name}", $args['sanitize_callback'] );
	}
}
function add_settings_section( ...$args ) {}
function add_settings_field( ...$args ) {}
function add_options_page( ...$args ) {
	return 'settings_page_samplit';
}
function add_settings_error( $setting, $code, $message, $type = 'error' ) {
	Samplit_Test_WP::$settings_errors[] = array( $setting, $code, $message );
}
function settings_errors( ...$args ) {}
function settings_fields( $group ) {
	echo '<input type="hidden" name="option_page" value="' . esc_attr( $group ) . '" />';
}
function do_settings_sections( $page ) {
	foreach ( Samplit_Options::all() as $name ) {
		if ( in_array( $name, array( Samplit_Options::CONTROL_PLANE_URL, Samplit_Options::SITE_KEY, Samplit_Options::EDGE_URL, Samplit_Options::SERVER_SECRET, Samplit_Options::SKIP_ADMINS ), true ) ) {
			Samplit_Admin::render_field( array( 'name' => $name ) );
		}
	}
}
function submit_button( $text = null, $type = 'primary', $name = 'submit', $wrap = true, $other = null ) {
	echo '<input type="submit" name="' . esc_attr( $name ) . '" class="button button-' . esc_attr( (string) $type ) . '" value="' . esc_attr( $text ?? 'Save Changes' ) . '" />';
}

// -- WooCommerce stand-in: exactly the CRUD methods the plugin may use --------------------
final class Samplit_Test_Order {
	/** @var array<string, mixed> */
	private array $meta;
	public int $saves = 0;
	public function __construct( private int $id ) {
		$this->meta = Samplit_Test_WP::$orders[ $id ]['meta'];
	}
	public function get_id() {
		return $this->id;
	}
	public function get_total() {
		return Samplit_Test_WP::$orders[ $this->id ]['total'];
	}
	public function get_currency() {
		return Samplit_Test_WP::$orders[ $this->id ]['currency'];
	}
	public function get_meta( $key = '', $single = true, $context = 'view' ) {
		return $this->meta[ $key ] ?? '';
	}
	public function update_meta_data( $key, $value, $meta_id = 0 ) {
		$this->meta[ $key ] = $value;
	}
	public function save() {
		Samplit_Test_WP::$orders[ $this->id ]['meta'] = $this->meta; // Persisted only here.
		++$this->saves;
		return $this->id;
	}
	public function __call( $name, $args ) {
		throw new LogicException( "the plugin called WC_Order::$name(), outside the contract" );
	}
}
function wc_get_order( $the_order = false ) {
	$id = (int) $the_order;
	return isset( Samplit_Test_WP::$orders[ $id ] ) ? new Samplit_Test_Order( $id ) : false;
}

require SAMPLIT_TEST_PLUGIN_DIR . '/samplit.php';
require __DIR__ . '/SamplitTestCase.php';
