<?php
/**
 * Public template functions.
 *
 * @package Samplit
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

if ( ! function_exists( 'samplit_variant' ) ) {
	/**
	 * The current visitor's arm in a Samplit experiment, decided server-side by the edge
	 * (signed GET /v1/assign, 1.5 s timeout, cached per visitor for 10 minutes, a stale
	 * copy used when the edge fails). Calling it marks the response
	 * `Cache-Control: private` (and DONOTCACHEPAGE): the page now differs per visitor.
	 *
	 * @param string $experiment_key The experiment id (as listed by "Test connection");
	 *                               `experiment_id:element_id` for one element of an
	 *                               independent multi-element experiment.
	 * @return string|null The arm id (e.g. "control"), or null when the visitor is not in
	 *                     the experiment, is excluded, or nothing is known.
	 */
	function samplit_variant( string $experiment_key ): ?string {
		return Samplit_Variant::get( $experiment_key );
	}
}
