<?php
/**
 * WooCommerce: paid orders become purchase conversions at the edge.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Captures the visitor id at checkout and sends each paid order once, signed, to
 * `POST {edge}/v1/events`, retrying from WP-Cron while the edge is down.
 *
 * Uses only wc_get_order() and the WC_Order methods get_id, get_total, get_currency,
 * get_meta, update_meta_data and save (HPOS-compatible CRUD).
 */
final class Samplit_WooCommerce {

	/** Order meta: the visitor id captured at checkout. */
	public const META_VISITOR = '_samplit_vid';
	/** Order meta: set (Unix time) once the edge accepted the conversion. */
	public const META_SENT = '_samplit_sent';
	/** Order meta: failed attempts so far. */
	public const META_ATTEMPTS = '_samplit_attempts';
	/** Order meta: the last failure. */
	public const META_ERROR = '_samplit_error';
	/** The WP-Cron hook of a retry (args: [order id]). */
	public const RETRY_HOOK = 'samplit_retry_order';
	/** Most attempts in all. */
	public const MAX_ATTEMPTS = 8;
	/** The conversion's goal. */
	public const GOAL = 'purchase';
	/** The events call's timeout, in seconds. */
	public const TIMEOUT = 3.0;

	/**
	 * Orders already handled in this request (payment_complete and the status hooks often
	 * fire together).
	 *
	 * @var array<int, true>
	 */
	private static array $handled = array();

	/** Registers the hooks. */
	public static function register(): void {
		add_action( 'before_woocommerce_init', array( self::class, 'declare_compatibility' ) );
		add_action( 'woocommerce_checkout_order_created', array( self::class, 'capture_visitor' ) );
		add_action( 'woocommerce_store_api_checkout_order_processed', array( self::class, 'capture_visitor' ) );
		add_action( 'woocommerce_payment_complete', array( self::class, 'order_paid' ), 10, 1 );
		add_action( 'woocommerce_order_status_processing', array( self::class, 'order_paid' ), 10, 1 );
		add_action( 'woocommerce_order_status_completed', array( self::class, 'order_paid' ), 10, 1 );
		add_action( self::RETRY_HOOK, array( self::class, 'retry' ), 10, 1 );
	}

	/** Declares compatibility with High-Performance Order Storage. */
	public static function declare_compatibility(): void {
		if ( class_exists( \Automattic\WooCommerce\Utilities\FeaturesUtil::class ) ) {
			\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'custom_order_tables', SAMPLIT_PLUGIN_FILE, true );
		}
	}

	/**
	 * At checkout: copies the samplit_vid cookie into the order's meta.
	 *
	 * @param mixed $order The new order (WC_Order).
	 */
	public static function capture_visitor( $order ): void {
		if ( ! is_object( $order ) || ! method_exists( $order, 'update_meta_data' ) ) {
			return;
		}
		$name = Samplit_Options::VISITOR_COOKIE;
		// phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- validated below.
		$vid = isset( $_COOKIE[ $name ] ) ? wp_unslash( $_COOKIE[ $name ] ) : '';
		if ( ! Samplit_Options::valid_visitor_id( $vid ) ) {
			return;
		}
		if ( (string) $order->get_meta( self::META_VISITOR ) === $vid ) {
			return;
		}
		$order->update_meta_data( self::META_VISITOR, $vid );
		$order->save();
	}

	/**
	 * woocommerce_payment_complete / woocommerce_order_status_{processing,completed}.
	 *
	 * @param mixed $order_id The order id.
	 */
	public static function order_paid( $order_id ): void {
		$order_id = (int) $order_id;
		if ( $order_id <= 0 || isset( self::$handled[ $order_id ] ) ) {
			return;
		}
		// A retry is queued already: that one sends (no second attempt in parallel).
		if ( false !== wp_next_scheduled( self::RETRY_HOOK, array( $order_id ) ) ) {
			return;
		}
		self::$handled[ $order_id ] = true;
		self::send( $order_id );
	}

	/**
	 * The WP-Cron retry.
	 *
	 * @param mixed $order_id The order id.
	 */
	public static function retry( $order_id ): void {
		$order_id = (int) $order_id;
		if ( $order_id > 0 ) {
			self::$handled[ $order_id ] = true;
			self::send( $order_id );
		}
	}

	/**
	 * Sends the order's conversion unless it was sent already or has no visitor.
	 *
	 * @param int $order_id The order id.
	 * @return string 'sent', 'skipped', 'retry' or 'failed'.
	 */
	public static function send( int $order_id ): string {
		$order = wc_get_order( $order_id );
		if ( ! $order ) {
			return 'skipped';
		}
		if ( '' !== (string) $order->get_meta( self::META_SENT ) ) {
			return 'skipped';
		}
		$vid = (string) $order->get_meta( self::META_VISITOR );
		if ( ! Samplit_Options::valid_visitor_id( $vid ) || ! Samplit_Options::signing_configured() ) {
			return 'skipped';
		}
		$body   = self::body( $order, $vid );
		$result = Samplit_Edge::events( $body, self::TIMEOUT );
		if ( $result->ok() ) {
			$order->update_meta_data( self::META_SENT, (string) time() );
			$order->save();
			return 'sent';
		}

		$attempts = (int) $order->get_meta( self::META_ATTEMPTS ) + 1;
		$order->update_meta_data( self::META_ATTEMPTS, (string) $attempts );
		$order->update_meta_data( self::META_ERROR, substr( ( 0 === $result->status ? '' : $result->status . ' ' ) . $result->error, 0, 500 ) );
		$order->save();
		// A malformed event stays malformed: resending would not help.
		$permanent = in_array( $result->status, array( 400, 413, 422 ), true );
		if ( $permanent || $attempts >= self::MAX_ATTEMPTS ) {
			return 'failed';
		}
		wp_schedule_single_event( time() + self::backoff( $attempts ), self::RETRY_HOOK, array( $order_id ) );
		return 'retry';
	}

	/**
	 * The delay before the next attempt after `$attempts` failures: 60 s, 300 s, 900 s,
	 * 3600 s, then doubling (7200, 14400, 28800 s).
	 *
	 * @param int $attempts Failed attempts so far (≥ 1).
	 */
	public static function backoff( int $attempts ): int {
		$steps = array( 60, 300, 900, 3600 );
		if ( $attempts <= count( $steps ) ) {
			return $steps[ max( 0, $attempts - 1 ) ];
		}
		return 3600 * ( 2 ** min( 10, $attempts - count( $steps ) ) );
	}

	/**
	 * The event body. The event id `wc-order:<id>` is the idempotency key: a resend (after
	 * a timeout whose request did arrive) is deduplicated at ingest.
	 *
	 * @param object $order WC_Order.
	 * @param string $vid   Visitor id.
	 */
	public static function body( $order, string $vid ): string {
		$event    = array(
			'type'  => 'conversion',
			'goal'  => self::GOAL,
			'value' => max( 0.0, (float) $order->get_total() ),
		);
		$currency = strtoupper( (string) $order->get_currency() );
		if ( 1 === preg_match( '/^[A-Z]{3}$/', $currency ) ) {
			$event['currency'] = $currency;
		}
		$event['id'] = 'wc-order:' . $order->get_id();
		return (string) wp_json_encode(
			array(
				'site_key'   => Samplit_Options::site_key(),
				'visitor_id' => $vid,
				'events'     => array( $event ),
			),
			JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_SLASHES
		);
	}

	/** Forgets the in-request bookkeeping (tests). */
	public static function reset(): void {
		self::$handled = array();
	}
}
