require "rails/railtie"

module Jobd
  # Rails integration: `config.jobd.url`, `config.jobd.token` (and the other
  # Jobd::Config fields) in config/application.rb, an environment file or an
  # initializer; makes `config.active_job.queue_adapter = :jobd` resolvable.
  class Railtie < ::Rails::Railtie
    config.jobd = ActiveSupport::OrderedOptions.new

    # Before active_job's own hook sets the configured adapter by name.
    initializer "jobd.active_job", before: "active_job.set_configs" do
      require "jobd/active_job" if defined?(::ActiveJob)
    end

    # After every initializer, so config/initializers/*.rb may set config.jobd too.
    config.after_initialize do |app|
      app.config.jobd.each { |key, value| Jobd.config.public_send("#{key}=", value) }
    end
  end
end
