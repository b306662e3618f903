# A minimal Rails 6.1 application (no database) for the jobd gem's tests. The
# tests copy it to a temporary folder, since Rails writes tmp/ and log/ next to
# config.ru. A real application would load the gem with Bundler
# (gem "jobd", path: ...); Debian's packaged Rails has no Bundler, so the test
# puts the gem's lib/ on the load path instead (JOBD_GEM_LIB).
require "rails"
require "action_controller/railtie"
require "active_job/railtie"

$LOAD_PATH.unshift(ENV.fetch("JOBD_GEM_LIB"))
require "jobd"

module JobdTestApp
  class Application < Rails::Application
    config.load_defaults 6.1
    config.eager_load = true
    config.secret_key_base = "jobd-test-app-only-not-a-secret"
    config.logger = ActiveSupport::Logger.new(ENV.fetch("JOBD_TEST_RAILS_LOG", File::NULL))
    config.log_level = :info

    config.active_job.queue_adapter = :jobd
  end
end
