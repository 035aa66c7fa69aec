<?php
/**
 * The Samplit snippet in the page head.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Prints the snippet on wp_head at priority 1.
 */
final class Samplit_Snippet {

	/** Registers the hook. */
	public static function register(): void {
		add_action( 'wp_head', array( self::class, 'print_tag' ), 1 );
	}

	/** Whether the current request gets the snippet. */
	public static function should_print(): bool {
		if ( is_admin() || ! Samplit_Options::snippet_configured() ) {
			return false;
		}
		if ( Samplit_Options::skip_admins() && current_user_can( 'manage_options' ) ) {
			return false;
		}
		/**
		 * Filters whether the Samplit snippet is printed on this page.
		 *
		 * @param bool $print Whether to print it.
		 */
		return (bool) apply_filters( 'samplit_print_snippet', true );
	}

	/** The tag ('' when nothing is to be printed). */
	public static function tag(): string {
		if ( ! self::should_print() ) {
			return '';
		}
		$key = Samplit_Options::site_key();
		// Synchronous on purpose: no async, no defer. The snippet must run before the
		// body paints: it hides only the elements the running experiments change (for at
		// most 1 s) and applies the variant, so a visitor never sees the original flash
		// before the variant ("flicker"). wp_head priority 1 puts it ahead of the theme's
		// and other plugins' scripts (printed at priorities 8-9). Assignment happens at
		// the edge from the browser, so full-page caches stay correct.
		return sprintf(
			'<script src="%1$s" data-site-key="%2$s" data-first-party-cookie="%3$s"></script>' . "\n",
			esc_url( Samplit_Edge::snippet_url() ),
			esc_attr( $key ),
			esc_attr( Samplit_Options::VISITOR_COOKIE )
		);
	}

	/** The wp_head callback. */
	public static function print_tag(): void {
		// phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- every part escaped in tag().
		echo self::tag();
	}
}
