Rails.application.routes.draw do
  # jobd's "active_job" webhook handler posts each job here.
  mount Jobd::Rack::Performer.new(secret: ENV.fetch("JOBD_WEBHOOK_SECRET")) => "/jobd/perform"

  # The tests poll this until the server answers.
  get "/up", to: proc { [200, { "content-type" => "text/plain" }, ["up"]] }
end
