<?php
/**
 * Settings → Samplit: the settings page, its buttons and their handlers.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The admin side. Every action checks the manage_options capability and a nonce (the
 * console's return is checked by the one-time state instead).
 */
final class Samplit_Admin {

	/** The settings page slug. */
	public const PAGE = 'samplit';
	/** The Settings API group. */
	public const GROUP = 'samplit';
	/** The capability every action requires. */
	public const CAPABILITY = 'manage_options';
	/** admin-post.php actions (each also its nonce action). */
	public const ACTIONS = array( 'samplit_connect', 'samplit_verify', 'samplit_test', 'samplit_disconnect' );
	/** Prefix of the user-scoped notices transient. */
	public const NOTICES_PREFIX = 'samplit_notices_';
	/** Prefix of the user-scoped test results transient. */
	public const TEST_PREFIX = 'samplit_test_';

	/** Guards the nested add_option() in {@see sanitize_secret()}. */
	private static bool $adding_secret = false;

	/** Registers the hooks. */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ) );
		add_action( 'admin_init', array( self::class, 'register_settings' ) );
		foreach ( self::ACTIONS as $action ) {
			add_action( 'admin_post_' . $action, array( self::class, 'handle_' . substr( $action, strlen( 'samplit_' ) ) ) );
		}
		add_filter( 'allowed_redirect_hosts', array( self::class, 'allowed_redirect_hosts' ) );
		add_filter( 'plugin_action_links_' . plugin_basename( SAMPLIT_PLUGIN_FILE ), array( self::class, 'action_links' ) );
	}

	/** The settings page URL. */
	public static function page_url(): string {
		return admin_url( 'options-general.php?page=' . self::PAGE );
	}

	/** Adds Settings → Samplit. */
	public static function menu(): void {
		$hook = add_options_page(
			__( 'Samplit', 'samplit' ),
			__( 'Samplit', 'samplit' ),
			self::CAPABILITY,
			self::PAGE,
			array( self::class, 'render_page' )
		);
		if ( is_string( $hook ) && '' !== $hook ) {
			add_action( 'load-' . $hook, array( self::class, 'load_page' ) );
		}
	}

	/**
	 * Adds a Settings link on the Plugins screen.
	 *
	 * @param array<int|string, string> $links Links.
	 * @return array<int|string, string>
	 */
	public static function action_links( $links ): array {
		$links   = is_array( $links ) ? $links : array();
		$links[] = '<a href="' . esc_url( self::page_url() ) . '">' . esc_html__( 'Settings', 'samplit' ) . '</a>';
		return $links;
	}

	/**
	 * Lets wp_safe_redirect() send the admin to the Samplit console.
	 *
	 * @param string[] $hosts Allowed hosts.
	 * @return string[]
	 */
	public static function allowed_redirect_hosts( $hosts ): array {
		$hosts = is_array( $hosts ) ? $hosts : array();
		$host  = wp_parse_url( Samplit_Options::control_plane_url(), PHP_URL_HOST );
		if ( is_string( $host ) && '' !== $host ) {
			$hosts[] = $host;
		}
		return $hosts;
	}

	/** Registers the settings, their section and fields (Settings API). */
	public static function register_settings(): void {
		register_setting(
			self::GROUP,
			Samplit_Options::CONTROL_PLANE_URL,
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_control_plane_url' ),
				'default'           => '',
			)
		);
		register_setting(
			self::GROUP,
			Samplit_Options::SITE_KEY,
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_site_key' ),
				'default'           => '',
			)
		);
		register_setting(
			self::GROUP,
			Samplit_Options::EDGE_URL,
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_edge_url' ),
				'default'           => '',
			)
		);
		register_setting(
			self::GROUP,
			Samplit_Options::SERVER_SECRET,
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_secret' ),
				'default'           => '',
			)
		);
		register_setting(
			self::GROUP,
			Samplit_Options::SKIP_ADMINS,
			array(
				'type'              => 'boolean',
				'sanitize_callback' => array( self::class, 'sanitize_bool' ),
				'default'           => false,
			)
		);

		add_settings_section( 'samplit_main', __( 'Settings', 'samplit' ), array( self::class, 'render_section' ), self::PAGE );
		$fields = array(
			Samplit_Options::CONTROL_PLANE_URL => __( 'Samplit console URL', 'samplit' ),
			Samplit_Options::SITE_KEY          => __( 'Site key', 'samplit' ),
			Samplit_Options::EDGE_URL          => __( 'Edge URL', 'samplit' ),
			Samplit_Options::SERVER_SECRET     => __( 'Server secret', 'samplit' ),
			Samplit_Options::SKIP_ADMINS       => __( 'Administrators', 'samplit' ),
		);
		foreach ( $fields as $name => $title ) {
			add_settings_field(
				$name,
				$title,
				array( self::class, 'render_field' ),
				self::PAGE,
				'samplit_main',
				array(
					'name'      => $name,
					'label_for' => $name,
				)
			);
		}
	}

	/**
	 * The console URL: an http(s) origin; the constant wins.
	 *
	 * @param mixed $value Submitted value.
	 */
	public static function sanitize_control_plane_url( $value ): string {
		$current = Samplit_Options::string( Samplit_Options::CONTROL_PLANE_URL );
		if ( Samplit_Options::control_plane_url_is_constant() || null === $value ) {
			return $current;
		}
		return self::sanitize_url( $value, Samplit_Options::CONTROL_PLANE_URL, __( 'The Samplit console URL must be an http(s) URL without query.', 'samplit' ) );
	}

	/**
	 * The edge URL.
	 *
	 * @param mixed $value Submitted value.
	 */
	public static function sanitize_edge_url( $value ): string {
		if ( null === $value ) {
			return Samplit_Options::string( Samplit_Options::EDGE_URL );
		}
		return self::sanitize_url( $value, Samplit_Options::EDGE_URL, __( 'The edge URL must be an http(s) URL without query.', 'samplit' ) );
	}

	/**
	 * The site key.
	 *
	 * @param mixed $value Submitted value.
	 */
	public static function sanitize_site_key( $value ): string {
		$value = is_string( $value ) ? trim( $value ) : '';
		if ( '' === $value || Samplit_Options::valid_site_key( $value ) ) {
			return $value;
		}
		add_settings_error( Samplit_Options::SITE_KEY, 'samplit_site_key', __( 'The site key may contain only letters, digits, "_" and "-".', 'samplit' ) );
		return Samplit_Options::string( Samplit_Options::SITE_KEY );
	}

	/**
	 * The server secret: write-only. An empty submission keeps the stored secret; the
	 * option is created non-autoloaded before WordPress would add it autoloaded.
	 *
	 * @param mixed $value Submitted value.
	 */
	public static function sanitize_secret( $value ): string {
		if ( self::$adding_secret ) {
			return is_string( $value ) ? $value : '';
		}
		$value   = is_string( $value ) ? trim( $value ) : '';
		$current = get_option( Samplit_Options::SERVER_SECRET, false );
		if ( '' === $value ) {
			$value = is_string( $current ) ? $current : '';
		} elseif ( ! Samplit_Options::valid_token( $value ) ) {
			add_settings_error( Samplit_Options::SERVER_SECRET, 'samplit_server_secret', __( 'The server secret looks wrong (it starts with ss_); the stored one was kept.', 'samplit' ) );
			$value = is_string( $current ) ? $current : '';
		}
		if ( false === $current ) {
			self::$adding_secret = true;
			add_option( Samplit_Options::SERVER_SECRET, '', '', 'no' );
			self::$adding_secret = false;
		}
		return $value;
	}

	/**
	 * A checkbox.
	 *
	 * @param mixed $value Submitted value.
	 */
	public static function sanitize_bool( $value ): bool {
		return ! empty( $value ) && 'false' !== $value && '0' !== $value;
	}

	/**
	 * A URL field.
	 *
	 * @param mixed  $value   Submitted value.
	 * @param string $option  Option name.
	 * @param string $message Error message.
	 */
	private static function sanitize_url( $value, string $option, string $message ): string {
		$value = is_string( $value ) ? trim( $value ) : '';
		if ( '' === $value ) {
			return '';
		}
		$clean = Samplit_Options::clean_url( esc_url_raw( $value, array( 'http', 'https' ) ) );
		if ( '' === $clean ) {
			add_settings_error( $option, $option, $message );
			return Samplit_Options::string( $option );
		}
		return $clean;
	}

	/** The section's introduction. */
	public static function render_section(): void {
		echo '<p>' . esc_html__( 'Connecting fills these in. You can also enter the site key, edge URL and server secret from the Samplit console by hand.', 'samplit' ) . '</p>';
	}

	/**
	 * One field. The server secret is write-only: its value is never printed.
	 *
	 * @param array<string, string> $args Field arguments (name).
	 */
	public static function render_field( $args ): void {
		$name = is_array( $args ) && isset( $args['name'] ) ? (string) $args['name'] : '';
		switch ( $name ) {
			case Samplit_Options::CONTROL_PLANE_URL:
				$constant = Samplit_Options::control_plane_url_is_constant();
				printf(
					'<input type="url" class="regular-text code" id="%1$s" name="%1$s" value="%2$s" placeholder="https://app.samplit.example"%3$s />',
					esc_attr( $name ),
					esc_attr( $constant ? Samplit_Options::control_plane_url() : Samplit_Options::string( $name ) ),
					$constant ? ' disabled="disabled"' : ''
				);
				if ( $constant ) {
					echo '<p class="description">' . esc_html__( 'Set by the SAMPLIT_CONTROL_PLANE_URL constant.', 'samplit' ) . '</p>';
				} else {
					echo '<p class="description">' . esc_html__( 'The address of your Samplit console, used by "Connect to Samplit".', 'samplit' ) . '</p>';
				}
				break;
			case Samplit_Options::SITE_KEY:
				printf(
					'<input type="text" class="regular-text code" id="%1$s" name="%1$s" value="%2$s" autocomplete="off" />',
					esc_attr( $name ),
					esc_attr( Samplit_Options::site_key() )
				);
				break;
			case Samplit_Options::EDGE_URL:
				printf(
					'<input type="url" class="regular-text code" id="%1$s" name="%1$s" value="%2$s" />',
					esc_attr( $name ),
					esc_attr( Samplit_Options::string( $name ) )
				);
				break;
			case Samplit_Options::SERVER_SECRET:
				$set = '' !== Samplit_Options::server_secret();
				printf(
					'<input type="password" class="regular-text code" id="%1$s" name="%1$s" value="" autocomplete="new-password" placeholder="%2$s" />',
					esc_attr( $name ),
					esc_attr( $set ? __( 'set — leave empty to keep it', 'samplit' ) : __( 'not set', 'samplit' ) )
				);
				echo '<p class="description">' . esc_html( $set ? __( 'Status: set. The secret is never shown again; type a new one to replace it.', 'samplit' ) : __( 'Status: not set. Needed for server-side calls (samplit_variant() and WooCommerce orders).', 'samplit' ) ) . '</p>';
				break;
			case Samplit_Options::SKIP_ADMINS:
				printf(
					'<label><input type="checkbox" id="%1$s" name="%1$s" value="1"%2$s /> %3$s</label>',
					esc_attr( $name ),
					checked( Samplit_Options::skip_admins(), true, false ),
					esc_html__( 'Do not load the snippet for logged-in administrators', 'samplit' )
				);
				break;
		}
	}

	/**
	 * Before the page is sent: the console's return (code and state) is handled here,
	 * then the admin is redirected to the clean page URL (so a reload does not resubmit).
	 */
	public static function load_page(): void {
		// phpcs:disable WordPress.Security.NonceVerification.Recommended -- the one-time state is the CSRF check of the console's return.
		if ( ! isset( $_GET['state'] ) || ( ! isset( $_GET['code'] ) && ! isset( $_GET['error'] ) ) ) {
			return;
		}
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Samplit.', 'samplit' ), 403 );
		}
		$state = sanitize_text_field( wp_unslash( (string) $_GET['state'] ) );
		if ( isset( $_GET['code'] ) ) {
			$code    = sanitize_text_field( wp_unslash( (string) $_GET['code'] ) );
			$notices = Samplit_Connect::finish( $code, $state );
		} else {
			$error   = sanitize_text_field( wp_unslash( (string) $_GET['error'] ) );
			$notices = array(
				/* translators: %s: the error code the console returned. */
				array( 'warning', sprintf( __( 'The connection was not completed in the Samplit console (%s).', 'samplit' ), $error ) ),
			);
		}
		// phpcs:enable
		self::add_notices( $notices );
		self::redirect( self::page_url() );
	}

	/** admin-post.php?action=samplit_connect */
	public static function handle_connect(): void {
		self::guard( 'samplit_connect' );
		$url = Samplit_Connect::start();
		if ( '' === $url ) {
			self::add_notices( array( array( 'error', __( 'Set the Samplit console URL first.', 'samplit' ) ) ) );
			self::redirect( self::page_url() );
		}
		self::redirect( $url );
	}

	/** admin-post.php?action=samplit_verify */
	public static function handle_verify(): void {
		self::guard( 'samplit_verify' );
		self::add_notices( array( Samplit_Connect::verify() ) );
		self::redirect( self::page_url() );
	}

	/** admin-post.php?action=samplit_test */
	public static function handle_test(): void {
		self::guard( 'samplit_test' );
		$test = Samplit_Connect::test();
		self::add_notices( $test['notices'] );
		set_transient( self::TEST_PREFIX . get_current_user_id(), $test, 300 );
		self::redirect( self::page_url() );
	}

	/** admin-post.php?action=samplit_disconnect */
	public static function handle_disconnect(): void {
		self::guard( 'samplit_disconnect' );
		self::add_notices( Samplit_Connect::disconnect() );
		delete_transient( self::TEST_PREFIX . get_current_user_id() );
		self::redirect( self::page_url() );
	}

	/**
	 * Capability and nonce.
	 *
	 * @param string $action The nonce action.
	 */
	private static function guard( string $action ): void {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Samplit.', 'samplit' ), 403 );
		}
		check_admin_referer( $action );
	}

	/**
	 * Redirects and stops.
	 *
	 * @param string $url Target.
	 */
	private static function redirect( string $url ): void {
		wp_safe_redirect( $url );
		exit;
	}

	/**
	 * Queues notices for the current user's next page view.
	 *
	 * @param array<int, array{0: string, 1: string}> $notices Notices.
	 */
	public static function add_notices( array $notices ): void {
		$key     = self::NOTICES_PREFIX . get_current_user_id();
		$pending = get_transient( $key );
		$pending = is_array( $pending ) ? $pending : array();
		set_transient( $key, array_merge( $pending, $notices ), 300 );
	}

	/**
	 * Takes the current user's queued notices.
	 *
	 * @return array<int, array{0: string, 1: string}>
	 */
	public static function take_notices(): array {
		$key     = self::NOTICES_PREFIX . get_current_user_id();
		$pending = get_transient( $key );
		delete_transient( $key );
		return is_array( $pending ) ? $pending : array();
	}

	/** The settings page. */
	public static function render_page(): void {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			return;
		}
		$info      = Samplit_Options::connection_info();
		$connected = '' !== Samplit_Options::connection_token();
		$cp        = Samplit_Options::control_plane_url();
		$test      = get_transient( self::TEST_PREFIX . get_current_user_id() );
		echo '<div class="wrap"><h1>' . esc_html__( 'Samplit', 'samplit' ) . '</h1>';
		settings_errors();
		foreach ( self::take_notices() as $notice ) {
			if ( ! is_array( $notice ) || ! isset( $notice[0], $notice[1] ) ) {
				continue;
			}
			$type = in_array( $notice[0], array( 'success', 'error', 'warning', 'info' ), true ) ? $notice[0] : 'info';
			printf( '<div class="notice notice-%1$s is-dismissible"><p>%2$s</p></div>', esc_attr( $type ), esc_html( (string) $notice[1] ) );
		}

		echo '<h2>' . esc_html__( 'Connection', 'samplit' ) . '</h2>';
		echo '<p>' . esc_html__( 'Visitors are assigned to variants at the Samplit edge, by the snippet in the browser: page caches keep working.', 'samplit' ) . '</p>';
		echo '<table class="form-table" role="presentation"><tbody>';
		self::row( __( 'Status', 'samplit' ), $connected ? __( 'Connected', 'samplit' ) : ( Samplit_Options::snippet_configured() ? __( 'Configured by hand', 'samplit' ) : __( 'Not connected', 'samplit' ) ) );
		self::row( __( 'Site key', 'samplit' ), '' !== Samplit_Options::site_key() ? Samplit_Options::site_key() : '—' );
		self::row( __( 'Edge URL', 'samplit' ), '' !== Samplit_Options::edge_url() ? Samplit_Options::edge_url() : '—' );
		self::row( __( 'Server secret', 'samplit' ), '' !== Samplit_Options::server_secret() ? __( 'set', 'samplit' ) : __( 'not set', 'samplit' ) );
		self::row( __( 'Connection token', 'samplit' ), $connected ? __( 'set', 'samplit' ) : __( 'not set', 'samplit' ) );
		if ( '' !== $info['host'] ) {
			self::row( __( 'Domain', 'samplit' ), $info['host'] . ( '' !== $info['domain_status'] ? ' (' . $info['domain_status'] . ')' : '' ) );
		}
		echo '</tbody></table>';

		echo '<div class="samplit-actions" style="display:flex;gap:8px;flex-wrap:wrap">';
		if ( '' !== $cp ) {
			self::button( 'samplit_connect', $connected ? __( 'Reconnect to Samplit', 'samplit' ) : __( 'Connect to Samplit', 'samplit' ), 'primary' );
		} else {
			echo '<p>' . esc_html__( 'Enter the Samplit console URL below to connect in one click.', 'samplit' ) . '</p>';
		}
		if ( $connected ) {
			self::button( 'samplit_verify', __( 'Verify domain', 'samplit' ), 'secondary' );
		}
		if ( $connected || Samplit_Options::snippet_configured() ) {
			self::button( 'samplit_test', __( 'Test connection', 'samplit' ), 'secondary' );
		}
		if ( $connected || Samplit_Options::snippet_configured() ) {
			self::button( 'samplit_disconnect', __( 'Disconnect', 'samplit' ), 'delete' );
		}
		echo '</div>';

		if ( is_array( $test ) && ! empty( $test['site'] ) ) {
			$site = $test['site'];
			echo '<h2>' . esc_html__( 'Test results', 'samplit' ) . '</h2>';
			/* translators: 1: site name, 2: site key, 3: host, 4: domain status. */
			echo '<p>' . esc_html( sprintf( __( 'Site: %1$s (%2$s), host %3$s, domain %4$s.', 'samplit' ), $site['name'] ?? '', $site['site_key'] ?? '', $site['host'] ?? '', $site['domain_status'] ?? '' ) ) . '</p>';
			$experiments = isset( $test['experiments'] ) && is_array( $test['experiments'] ) ? $test['experiments'] : array();
			if ( $experiments ) {
				echo '<ul class="samplit-experiments">';
				foreach ( $experiments as $e ) {
					/* translators: 1: experiment name, 2: status, 3: experiment id (what samplit_variant() takes). */
					echo '<li>' . esc_html( sprintf( __( '%1$s — %2$s (id %3$s)', 'samplit' ), $e['name'] ?? '', $e['status'] ?? '', $e['id'] ?? '' ) ) . '</li>';
				}
				echo '</ul>';
			} else {
				echo '<p>' . esc_html__( 'No experiments yet.', 'samplit' ) . '</p>';
			}
		}

		echo '<form method="post" action="' . esc_url( admin_url( 'options.php' ) ) . '">';
		settings_fields( self::GROUP );
		do_settings_sections( self::PAGE );
		submit_button();
		echo '</form></div>';
	}

	/**
	 * A status row.
	 *
	 * @param string $label Label.
	 * @param string $value Value (text).
	 */
	private static function row( string $label, string $value ): void {
		printf( '<tr><th scope="row">%1$s</th><td>%2$s</td></tr>', esc_html( $label ), esc_html( $value ) );
	}

	/**
	 * A POST button to admin-post.php with its nonce.
	 *
	 * @param string $action Action (and nonce action).
	 * @param string $label  Button text.
	 * @param string $type   primary, secondary or delete.
	 */
	private static function button( string $action, string $label, string $type ): void {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
		echo '<input type="hidden" name="action" value="' . esc_attr( $action ) . '" />';
		wp_nonce_field( $action );
		submit_button( $label, $type, 'submit-' . $action, false );
		echo '</form>';
	}
}
