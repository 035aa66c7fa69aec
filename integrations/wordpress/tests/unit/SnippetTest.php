<?php
/**
 * The snippet in wp_head.
 *
 * @package Samplit
 */

final class SnippetTest extends SamplitTestCase {

	public function test_it_is_hooked_on_wp_head_at_priority_1(): void {
		$this->assertSame( 1, has_action( 'wp_head', array( Samplit_Snippet::class, 'print_tag' ) ) );
	}

	public function test_the_tag_is_synchronous_with_the_first_party_cookie(): void {
		$this->configure();
		$out = $this->capture( static fn () => do_action( 'wp_head' ) );
		$this->assertSame(
			'<script src="https://edge.example.net/v1/samplit.js?site=pk_abc" data-site-key="pk_abc" data-first-party-cookie="samplit_vid"></script>' . "\n",
			$out
		);
		$this->assertStringNotContainsString( 'async', $out );
		$this->assertStringNotContainsString( 'defer', $out );
	}

	public function test_the_tag_needs_no_secret_and_never_prints_it(): void {
		$this->configure( false );
		$this->assertStringContainsString( 'data-site-key="pk_abc"', Samplit_Snippet::tag() );
		$this->configure( true );
		$this->assertStringNotContainsString( self::SECRET, Samplit_Snippet::tag() );
	}

	public function test_hostile_values_are_escaped(): void {
		$this->configure();
		Samplit_Test_WP::$options[ Samplit_Options::SITE_KEY ]['value'] = 'pk_"><script>alert(1)</script>&x';
		$tag = Samplit_Snippet::tag();
		$this->assertStringNotContainsString( '<script>alert', $tag );
		$this->assertSame( 1, substr_count( $tag, '<' ) - 1, 'one <script> and its </script>, nothing else' );
		$this->assertStringContainsString( 'data-site-key="pk_&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;x"', $tag );
		$this->assertStringContainsString( 'src="https://edge.example.net/v1/samplit.js?site=pk_%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E%26x"', $tag );
	}

	public function test_nothing_when_not_configured(): void {
		$this->assertSame( '', $this->capture( static fn () => do_action( 'wp_head' ) ) );
		update_option( Samplit_Options::SITE_KEY, self::SITE_KEY );
		$this->assertSame( '', Samplit_Snippet::tag(), 'no edge URL' );
		delete_option( Samplit_Options::SITE_KEY );
		update_option( Samplit_Options::EDGE_URL, self::EDGE );
		$this->assertSame( '', Samplit_Snippet::tag(), 'no site key' );
		update_option( Samplit_Options::SITE_KEY, self::SITE_KEY );
		update_option( Samplit_Options::EDGE_URL, 'javascript:alert(1)' );
		$this->assertSame( '', Samplit_Snippet::tag(), 'an edge URL that is not http(s)' );
	}

	public function test_skip_admins_leaves_out_only_users_who_can_manage_options(): void {
		$this->configure();
		Samplit_Test_WP::$caps['manage_options'] = true;
		$this->assertNotSame( '', Samplit_Snippet::tag(), 'administrator, option off' );
		update_option( Samplit_Options::SKIP_ADMINS, true );
		$this->assertSame( '', Samplit_Snippet::tag(), 'administrator, option on' );
		Samplit_Test_WP::$caps = array( 'edit_posts' => true );
		$this->assertNotSame( '', Samplit_Snippet::tag(), 'editor, option on' );
		Samplit_Test_WP::$caps = array();
		$this->assertNotSame( '', Samplit_Snippet::tag(), 'visitor, option on' );
	}

	public function test_never_in_the_admin(): void {
		$this->configure();
		Samplit_Test_WP::$is_admin = true;
		$this->assertSame( '', Samplit_Snippet::tag() );
	}
}
