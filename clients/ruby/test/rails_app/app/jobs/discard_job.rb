class DiscardJob < ApplicationJob
  class Unwanted < StandardError; end
  discard_on Unwanted

  def perform(token)
    File.write(File.join(self.class.out_dir, "#{token}.ran"), "")
    raise Unwanted, "discard me"
  end
end
