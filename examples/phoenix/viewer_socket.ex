# The browsers' socket, apart from the cameras': Phoenix's default
# check_origin stays ON here (a page on another site must not open it).
#
# endpoint.ex:
#   socket "/viewer_socket", MyAppWeb.ViewerSocket, websocket: true, longpoll: false
# Note: Phoenix caches the check_origin setting per socket MODULE, so do not
# mount one module twice with different check_origin values: one of them
# silently wins. Use a module per mount, as here.
defmodule MyAppWeb.ViewerSocket do
  use Phoenix.Socket

  channel "view:camera:*", MyAppWeb.ViewerChannel

  @impl true
  # A viewer token, if you want one (e.g. Phoenix.Token signed for the
  # logged-in user and handed to the page); accept everyone otherwise.
  def connect(params, socket, _connect_info) do
    case Application.get_env(:my_app, :viewer_token) do
      nil -> {:ok, socket}
      token ->
        if Plug.Crypto.secure_compare(params["token"] || "", token),
          do: {:ok, socket},
          else: :error
    end
  end

  @impl true
  def id(_socket), do: nil
end
