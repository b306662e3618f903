require_relative "lib/jobd/version"

Gem::Specification.new do |s|
  s.name        = "jobd"
  s.version     = Jobd::VERSION
  s.summary     = "Client, ActiveJob adapter and signed webhook performer for the jobd job server"
  s.description = "Enqueue jobs into jobd over HTTP (persistent connections, standard library only), " \
                  "switch Rails to jobd with queue_adapter = :jobd, and perform jobs when jobd calls back."
  s.authors     = ["jobd authors"]
  s.license     = "MIT"
  s.files       = Dir["lib/**/*.rb"] + ["README.md"]
  s.require_paths = ["lib"]
  s.required_ruby_version = ">= 2.7"
  # No run-time dependencies: ActiveJob and Rack are used only by the files that
  # integrate with them, and only when the application already has them.
end
