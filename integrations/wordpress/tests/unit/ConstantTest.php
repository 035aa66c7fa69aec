<?php
/**
 * SAMPLIT_CONTROL_PLANE_URL overrides the option (a separate process: constants stay).
 *
 * @package Samplit
 */

final class ConstantTest extends SamplitTestCase {

	/**
	 * @runInSeparateProcess
	 * @preserveGlobalState disabled
	 */
	public function test_the_constant_wins_over_the_option_and_the_field_is_read_only(): void {
		update_option( Samplit_Options::CONTROL_PLANE_URL, 'https://option.example' );
		define( 'SAMPLIT_CONTROL_PLANE_URL', 'https://constant.example/' );
		$this->assertSame( 'https://constant.example', Samplit_Options::control_plane_url() );
		Samplit_Admin::register_settings();
		update_option( Samplit_Options::CONTROL_PLANE_URL, 'https://posted.example' );
		$this->assertSame( 'https://option.example', get_option( Samplit_Options::CONTROL_PLANE_URL ), 'a submitted value is ignored' );
		$field = $this->capture( static fn () => Samplit_Admin::render_field( array( 'name' => Samplit_Options::CONTROL_PLANE_URL ) ) );
		$this->assertStringContainsString( 'value="https://constant.example" placeholder="https://app.samplit.example" disabled="disabled"', $field );
		$this->assertStringStartsWith( 'https://constant.example/app/connect/wordpress?', Samplit_Connect::start() );
	}
}
