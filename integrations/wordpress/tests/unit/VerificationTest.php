<?php
/**
 * /.well-known/samplit-verification.txt
 *
 * @package Samplit
 */

final class VerificationTest extends SamplitTestCase {

	public function test_it_is_hooked_early(): void {
		$this->assertSame( 0, has_action( 'init', array( Samplit_Verification::class, 'maybe_serve' ) ) );
	}

	public function test_only_the_exact_path_matches(): void {
		$this->assertTrue( Samplit_Verification::matches( '/.well-known/samplit-verification.txt' ) );
		$this->assertTrue( Samplit_Verification::matches( '/.well-known/samplit-verification.txt?x=1' ) );
		$this->assertFalse( Samplit_Verification::matches( '/.well-known/samplit-verification.txt/' ) );
		$this->assertFalse( Samplit_Verification::matches( '/blog/.well-known/samplit-verification.txt' ) );
		$this->assertFalse( Samplit_Verification::matches( '/' ) );
	}

	public function test_the_body_is_exactly_the_token_or_404(): void {
		$this->assertSame( array( 404, "Not found\n" ), Samplit_Verification::response() );
		update_option( Samplit_Options::VERIFICATION_TOKEN, 'svt_verify0123456789' );
		$this->assertSame( array( 200, 'svt_verify0123456789' ), Samplit_Verification::response() );
	}

	public function test_other_paths_fall_through(): void {
		$_SERVER['REQUEST_URI'] = '/shop/';
		update_option( Samplit_Options::VERIFICATION_TOKEN, 'svt_verify0123456789' );
		$this->assertSame( '', $this->capture( array( Samplit_Verification::class, 'maybe_serve' ) ) );
	}
}
